package failure

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

func TestKindOf(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
		want Kind
	}{
		{"plain", base, Internal},
		{"invalid", New(Invalid, base), Invalid},
		{"source", New(Source, base), Source},
		{"wrapped with %w", fmt.Errorf("building: %w", New(Source, base)), Source},
		{"joined", errors.Join(errors.New("x"), New(Invalid, base)), Invalid},
		{"outermost wins", New(Invalid, fmt.Errorf("base.image: %w", New(Source, base))), Invalid},
		{"errorf", Errorf(Source, "fetching %s: %w", "kubelet", fs.ErrNotExist), Source},
		{"nil", nil, Internal},
		{"kinded", fmt.Errorf("reading: %w", kinded{}), Source},
		{"outer *Error over kinded", New(Invalid, kinded{}), Invalid},
		{"full disk under a source failure", Errorf(Source, "pulling: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), Internal},
		{"quota under a source failure", New(Source, fmt.Errorf("caching: %w", syscall.EDQUOT)), Internal},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("%s: KindOf = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// kinded is an error type that knows its kind.
type kinded struct{}

func (kinded) Error() string     { return "kinded" }
func (kinded) FailureKind() Kind { return Source }

func TestErrorKeepsMessageAndChain(t *testing.T) {
	err := Errorf(Invalid, "reading %s: %w", "spec.yaml", fs.ErrNotExist)
	if err.Error() != "reading spec.yaml: file does not exist" {
		t.Errorf("message %q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("the wrapped error is lost")
	}
	if New(Source, nil) != nil {
		t.Error("New(kind, nil) is not nil")
	}
	if !Is(err, Invalid) || Is(err, Source) || Is(nil, Internal) {
		t.Error("Is disagrees with KindOf")
	}
}
