package cache

import (
	"errors"
	"fmt"

	"github.com/nodebake/nodebake/layers/failure"
)

// ErrCorrupt is matched (errors.Is) by every *CorruptError.
var ErrCorrupt = errors.New("cache entry corrupt")

// Problem says what is wrong with a cache entry.
type Problem int

// The problems a cache entry can have.
const (
	// ProblemContent: a file's sha256 differs from the recorded one.
	ProblemContent Problem = iota + 1
	// ProblemSize: a file's size differs from the recorded one.
	ProblemSize
	// ProblemMissing: a recorded file is gone.
	ProblemMissing
	// ProblemExtra: a file is there that was not recorded, or is not a
	// regular file.
	ProblemExtra
	// ProblemUnrecorded: the entry has no record of its digests; an older
	// nodebake wrote it (a legacy entry). Its content cannot be checked:
	// builds adopt it into a recorded entry (see PutEntry), and it can be
	// removed.
	ProblemUnrecorded
	// ProblemRecord: the entry's record is unreadable, malformed or names
	// another key.
	ProblemRecord
)

func (p Problem) String() string {
	switch p {
	case ProblemContent:
		return "content changed"
	case ProblemSize:
		return "size changed"
	case ProblemMissing:
		return "file missing"
	case ProblemExtra:
		return "unrecorded file"
	case ProblemUnrecorded:
		return "no recorded digests"
	case ProblemRecord:
		return "bad record"
	}
	return fmt.Sprintf("problem %d", int(p))
}

// CorruptError reports a cache entry whose content is not what was recorded
// when it was written. The caller evicts the entry (Cache.Evict, or
// Cache.Remove for a blob) and makes it again.
//
// For ProblemContent, errors.As also finds a *ChecksumError with both
// digests, so code that handles checksum mismatches handles this too.
type CorruptError struct {
	// Item says whether a blob or a keyed entry is corrupt (KindStray for
	// what VerifyAll found that is neither).
	Item Kind
	// Key is the entry's key; for a blob, its digest ("sha256:...").
	Key string
	// File is the file within a keyed entry (slash-separated), or "".
	File    string
	Problem Problem
	// Recorded and Actual are the file's digests (ProblemContent; Actual
	// is also set when a full verification found another problem).
	Recorded, Actual Digest
	// RecordedSize and ActualSize are set for ProblemSize and, where known,
	// for ProblemContent.
	RecordedSize, ActualSize int64
	// Err is the underlying error of a ProblemRecord.
	Err error
}

func (e *CorruptError) Error() string {
	what := fmt.Sprintf("cache entry %q", e.Key)
	if e.Item == KindBlob {
		what = "cached blob " + e.Key
	}
	if e.File != "" {
		what += " file " + e.File
	}
	var detail string
	switch e.Problem {
	case ProblemContent:
		detail = fmt.Sprintf("content is %s, recorded %s", e.Actual, e.Recorded)
	case ProblemSize:
		detail = fmt.Sprintf("%d bytes, recorded %d", e.ActualSize, e.RecordedSize)
	case ProblemMissing:
		detail = fmt.Sprintf("missing (recorded %d bytes, %s)", e.RecordedSize, e.Recorded)
	case ProblemExtra:
		detail = "not recorded when the entry was written"
	case ProblemUnrecorded:
		return what + " cannot be verified: it has no recorded digests (an older nodebake wrote it; a build adopts it, cache prune or verify --evict removes it)"
	case ProblemRecord:
		detail = "bad record"
		if e.Err != nil {
			detail += ": " + e.Err.Error()
		}
	default:
		detail = e.Problem.String()
	}
	return what + " is corrupt: " + detail
}

// FailureKind makes a corrupt cache entry a source failure (a source that
// could not be had intact), whatever wraps it.
func (e *CorruptError) FailureKind() failure.Kind { return failure.Source }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns a *ChecksumError for a content mismatch, else Err.
func (e *CorruptError) Unwrap() error {
	if e.Problem == ProblemContent {
		name := e.Key
		if e.File != "" {
			name += " " + e.File
		}
		return &ChecksumError{Artifact: "cache entry " + name, Expected: e.Recorded, Actual: e.Actual}
	}
	return e.Err
}
