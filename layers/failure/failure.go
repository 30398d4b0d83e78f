// Package failure gives an error a kind: whether the caller's input was
// invalid, a source could not be had, or something went wrong inside. The
// kind is what a command line turns into an exit code and what a caller
// needs to decide whether to fix its input or retry later; the message
// stays the wrapped error's.
//
// There is one error type, *Error. The package that knows what went wrong
// wraps the error where it arises (a spec that does not validate, a
// download that failed, a checksum that does not match) and callers keep
// wrapping with %w; KindOf finds the kind with errors.As. An interruption is
// not a kind: it is the context's error, and callers check the context.
package failure

import (
	"errors"
	"fmt"
	"syscall"
)

// Kind says what kind of failure an error is.
type Kind int

// The kinds.
const (
	// Internal is a failure of nodebake or of the machine it runs on (a
	// full disk, a bug): neither fixing the input nor retrying helps. It is
	// the kind of an error that carries none.
	Internal Kind = iota
	// Invalid is a problem with the caller's input: a spec, a flag, a
	// file, a reference, a missing base image.
	Invalid
	// Source is a source that could not be had: a download, a registry, a
	// checksum that does not match, a build from source, an artifact not
	// in the cache when offline.
	Source
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid input"
	case Source:
		return "source failure"
	}
	return "internal error"
}

// Error is an error with a kind.
type Error struct {
	Kind Kind
	Err  error
}

// Error returns the wrapped error's message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// New returns err with kind k; nil when err is nil.
func New(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// Errorf formats an error (%w wraps as with fmt.Errorf) of kind k.
func Errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// FailureKind returns the error's kind.
func (e *Error) FailureKind() Kind { return e.Kind }

// Kinded is an error that knows its kind: *Error, and error types of other
// packages whose kind is always the same (a corrupt cache entry is a
// source failure, wherever it surfaces).
type Kinded interface {
	error
	FailureKind() Kind
}

// KindOf returns the kind of the outermost Kinded error in err's chain, or
// Internal when there is none. A full disk is Internal whatever wraps it:
// the cause, not the stage that met it, decides.
func KindOf(err error) Kind {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return Internal
	}
	var k Kinded
	if errors.As(err, &k) {
		return k.FailureKind()
	}
	return Internal
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }
