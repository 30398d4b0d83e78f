package health

import (
	"context"
	"fmt"
	"os/exec"
)

// runSystemctl runs systemctl with args and returns its standard output.
func runSystemctl(ctx context.Context, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, "systemctl", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("systemctl %v: %w", args, err)
	}
	return out, nil
}
