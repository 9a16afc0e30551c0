// Package fuse mounts the coord tree as a filesystem (hanwen/go-fuse/v2),
// so shell tools work on it: cat, echo >, ls, find, grep -r, mkdir -p,
// rm -r, flock. The mount is just another coord client: it imports
// coord/client and coord/client/recipe, never the server packages.
package fuse
