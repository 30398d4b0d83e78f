package spec

//go:generate go run ./internal/specgen

import _ "embed"

// schemaJSON is the spec's JSON Schema, generated from the spec's types and
// their doc comments by `go generate` (internal/specgen), which also writes
// the reference docs/spec.md. A test fails when either is stale.
//
//go:embed schema.json
var schemaJSON string

// Schema returns the JSON Schema (draft 2020-12) of a spec file.
func Schema() []byte { return []byte(schemaJSON) }
