// Package probe is the contract between the end-to-end test and the probe
// program in its container image (package web): how a list of steps is
// written as a container's arguments, and how their outcomes come back in
// the container's termination message.
package probe

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Separator separates the steps in a container's arguments.
const Separator = "--"

// MaxMessage is the longest termination message Kubernetes keeps whole.
const MaxMessage = 4096

// Step is one step's outcome.
type Step struct {
	// Step is the step's arguments, space-separated.
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	// Millis is how long the step took; Attempts how many tries a fetch
	// needed.
	Millis   int64 `json:"ms"`
	Attempts int   `json:"attempts,omitempty"`
}

// Args writes steps as a container's arguments.
func Args(steps ...[]string) []string {
	var out []string
	for i, s := range steps {
		if i > 0 {
			out = append(out, Separator)
		}
		out = append(out, s...)
	}
	return out
}

// Split cuts a container's arguments into steps.
func Split(args []string) [][]string {
	var out [][]string
	var cur []string
	for _, a := range args {
		if a == Separator {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, a)
	}
	return append(out, cur)
}

// Message encodes the steps' outcomes as a termination message.
func Message(steps []Step) ([]byte, error) {
	b, err := json.Marshal(steps)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("the steps' outcomes take %d bytes, more than the %d of a termination message", len(b), MaxMessage)
	}
	return b, nil
}

// Parse decodes a termination message into the steps' outcomes.
func Parse(msg string) ([]Step, error) {
	if len(msg) > MaxMessage {
		return nil, fmt.Errorf("a termination message of %d bytes, more than %d", len(msg), MaxMessage)
	}
	var steps []Step
	if err := json.Unmarshal([]byte(msg), &steps); err != nil {
		return nil, fmt.Errorf("decoding the steps' outcomes %q: %w", short(msg), err)
	}
	return steps, nil
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return strings.TrimSpace(s)
}
