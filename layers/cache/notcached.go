package cache

import "errors"

// ErrNotCached is wrapped by the error of an offline lookup (a release
// artifact, a registry image) whose content is not in the cache.
var ErrNotCached = errors.New("not in the cache")
