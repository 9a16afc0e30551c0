package recipe_test

import "coord/proto/coordpb"

func closeReq(id uint64) *coordpb.CloseSessionRequest {
	return &coordpb.CloseSessionRequest{SessionId: id}
}
