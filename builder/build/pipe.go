package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// errReaderStopped is what a stream's writer gets when the reading stage
// has returned: its own error, if any, is the cause.
var errReaderStopped = errors.New("the reading stage stopped")

// streamStage is one end of a stream: a name for messages and its work.
type streamStage[T any] struct {
	what string
	run  func(ctx context.Context, rw T) error
}

// pipeStream runs write, which produces a stream, and read, which consumes
// it, joined by a pipe. When one fails the other is stopped, and the error
// returned is the first cause, wrapped with the failing stage's name: the
// disk that filled up, the file that could not be read, not the closed
// pipe the other stage saw as a consequence. When ctx ends, the cause is
// the context's (context.Cause: for a signal, "interrupt signal
// received"), which matches context.Canceled or DeadlineExceeded.
func pipeStream(ctx context.Context, write streamStage[io.Writer], read streamStage[io.Reader]) error {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu        sync.Mutex
		first     error
		firstWhat string
	)
	// fail records err as the cause unless one came first, then stops
	// the other stage. Each stage records its error before it closes its
	// end of the pipe, so a failure caused by the other stage always
	// comes second.
	fail := func(what string, err error) {
		mu.Lock()
		if first == nil {
			first, firstWhat = err, what
		}
		mu.Unlock()
		cancel(err)
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := write.run(ctx, pw)
		if err != nil {
			fail(write.what, err)
		}
		pw.CloseWithError(err) // nil: the reader sees the end of the stream
	}()
	err := read.run(ctx, pr)
	if err != nil {
		fail(read.what, err)
	}
	pr.CloseWithError(errReaderStopped)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if first == nil {
		return nil
	}
	if parent.Err() != nil {
		first = context.Cause(parent)
	}
	return fmt.Errorf("%s: %w", firstWhat, first)
}
