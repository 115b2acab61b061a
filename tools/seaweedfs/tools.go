//go:build tools

// Package tools pins the SeaweedFS version the project builds: `go build -o weed
// github.com/seaweedfs/seaweedfs/weed` in this directory (lakehouse/services/objectstore.py).
// SeaweedFS's own go.mod has a replace directive, so `go install ...@version` is refused;
// this module repeats that replace line and upstream's require block (same versions).
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
