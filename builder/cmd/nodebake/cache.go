package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nodebake/nodebake/layers/cache"
)

const cacheUsage = `Usage: nodebake cache verify [--cache DIR] [--evict] [-q]
           check every cached download, image blob and built artifact against
           the digests recorded when it was stored (exit 3 if any does not match)
       nodebake cache prune [--cache DIR] [--unused-for DURATION] [--keep KEY]... [--all] [--dry-run] [-q]
           remove what has not been used for DURATION (e.g. 720h or 30d), or
           everything but the given keys (entry keys or blob digests)`

func runCache(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, cacheUsage)
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	switch args[0] {
	case "verify":
		return runCacheVerify(ctx, e, args[1:])
	case "prune":
		return runCachePrune(ctx, e, args[1:])
	}
	return usagef("unknown subcommand %q (want verify or prune)", args[0])
}

func runCacheVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "cache verify", "", "Check every item of the cache against the digests recorded when it was stored.")
	cacheDir := fs.String("cache", "", "cache `DIR` (default $NODEBAKE_CACHE or the user cache directory)")
	evict := fs.Bool("evict", false, "remove the items that do not verify (a build makes them again)")
	quiet := fs.Bool("q", false, "print only problems and the summary")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("cache verify takes no arguments")
	}
	c, err := openCache(*cacheDir)
	if err != nil {
		return err
	}
	rep, err := c.VerifyAll(ctx, cache.VerifyOptions{
		Evict: *evict,
		Progress: func(ev cache.VerifyEvent) {
			if ev.Err == nil && *quiet {
				return
			}
			status := "ok"
			var ce *cache.CorruptError
			switch {
			case ev.Err == nil:
			case ev.Evicted:
				status = "EVICTED"
			case errors.As(ev.Err, &ce) && ce.Problem == cache.ProblemUnrecorded:
				status = "LEGACY"
			default:
				status = "FAILED"
			}
			pct := int64(100)
			if ev.TotalBytes > 0 {
				pct = ev.Bytes * 100 / ev.TotalBytes
			}
			fmt.Fprintf(e.stderr, "[%d/%d %3d%%] %-7s %s %s\n", ev.Index, ev.Count, pct, status, ev.Kind, ev.Name)
			if ev.Err != nil {
				fmt.Fprintf(e.stderr, "    %v\n", ev.Err)
			}
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "verified %d items (%s) in %s: %d did not verify", rep.Checked, mib(rep.Bytes), c.Dir(), len(rep.Problems))
	if rep.Evicted > 0 {
		fmt.Fprintf(e.stdout, ", %d evicted", rep.Evicted)
	}
	fmt.Fprintln(e.stdout)
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%d of %d cache items do not verify: %w", len(rep.Problems), rep.Checked, errors.Join(rep.Problems...))
	}
	return nil
}

func runCachePrune(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "cache prune", "", "Remove what the cache holds and builds no longer use.")
	cacheDir := fs.String("cache", "", "cache `DIR` (default $NODEBAKE_CACHE or the user cache directory)")
	unused := fs.String("unused-for", "", "remove items not used for `DURATION` (720h, 30d)")
	var keep []string
	fs.Func("keep", "keep the entry with this `KEY` (or the blob with this digest), remove the rest; repeatable", func(s string) error {
		keep = append(keep, s)
		return nil
	})
	all := fs.Bool("all", false, "remove everything")
	dryRun := fs.Bool("dry-run", false, "print what would be removed, remove nothing")
	quiet := fs.Bool("q", false, "print only the summary")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("cache prune takes no arguments")
	}
	opts := cache.PruneOptions{Keep: keep, DryRun: *dryRun}
	if *unused != "" {
		d, err := parseAge(*unused)
		if err != nil {
			return usagef("--unused-for: %v", err)
		}
		opts.UnusedSince = time.Now().Add(-d)
	}
	switch {
	case *all && (keep != nil || *unused != ""):
		return usagef("--all removes everything: give it alone")
	case *all:
		opts.Keep = []string{}
	case keep == nil && *unused == "":
		return usagef("say what to remove: --unused-for DURATION, --keep KEY or --all")
	}
	c, err := openCache(*cacheDir)
	if err != nil {
		return err
	}
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	if !*quiet {
		opts.Progress = func(ev cache.PruneEvent) {
			fmt.Fprintf(e.stderr, "%s %s %s (%s, last used %s)\n", verb, ev.Kind, ev.Name, mib(ev.Size), ev.LastUsed.Format(time.DateTime))
		}
	}
	rep, err := c.Prune(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %d items (%s) from %s; %d items (%s) kept\n", verb, rep.Removed, mib(rep.RemovedBytes), c.Dir(), rep.Kept, mib(rep.KeptBytes))
	return nil
}

// parseAge parses a Go duration, or a number of days ("30d").
func parseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q: want a number of days like 30d, or a duration like 720h", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration like 720h, or a number of days like 30d", s)
	}
	return d, nil
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", (n+1023)>>10)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}
