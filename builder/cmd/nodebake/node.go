package main

import "context"

func runNode(ctx context.Context, e *env, args []string) error {
	return usagef("node: not available yet")
}
