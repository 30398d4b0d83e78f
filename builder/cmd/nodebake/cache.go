package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/layers/cache"
)

func newCacheCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Check the cache against its recorded digests, or prune it (verify, prune)",
		Long: "The cache (--cache DIR, default $NODEBAKE_CACHE or the user cache directory) holds downloads,\n" +
			"image blobs and built artifacts, each with the sizes and sha256 digests recorded when it was\n" +
			"stored. Every read verifies them; cache verify checks everything at once, cache prune removes\n" +
			"what builds no longer use.",
	}
	cmd.AddCommand(newCacheVerifyCmd(e), newCachePruneCmd(e))
	return cmd
}

func newCacheVerifyCmd(e *env) *cobra.Command {
	var o struct {
		cacheDir     string
		evict, quiet bool
	}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every item of the cache against the digests recorded when it was stored",
		Long: "Check every cached download, image blob and built artifact against the digests recorded when\n" +
			"it was stored, with progress on stderr. An item that does not match is FAILED (EVICTED with\n" +
			"--evict: a build makes it again); an entry an older nodebake wrote without digests is LEGACY,\n" +
			"and cannot be verified. Exit 3 when anything does not verify.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := openCache(o.cacheDir)
			if err != nil {
				return err
			}
			rep, err := c.VerifyAll(cmd.Context(), cache.VerifyOptions{
				Evict: o.evict,
				Progress: func(ev cache.VerifyEvent) {
					if ev.Err == nil && o.quiet {
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
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cacheDir, "cache", "", "cache `DIR` (default $NODEBAKE_CACHE or the user cache directory)")
	f.BoolVar(&o.evict, "evict", false, "remove the items that do not verify (a build makes them again)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only problems and the summary")
	return cmd
}

func newCachePruneCmd(e *env) *cobra.Command {
	var o struct {
		cacheDir, unused   string
		keep               []string
		all, dryRun, quiet bool
	}
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove what the cache holds and builds no longer use",
		Long: "Remove what has not been used for DURATION (--unused-for 720h or 30d), or everything but\n" +
			"the given keys (--keep, entry keys or blob digests), or everything (--all). Each removed\n" +
			"item is printed on stderr, the summary on stdout.",
		Example: "  nodebake cache prune --unused-for 30d\n  nodebake cache prune --keep KEY --dry-run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keepGiven := cmd.Flags().Changed("keep")
			opts := cache.PruneOptions{DryRun: o.dryRun}
			if keepGiven {
				opts.Keep = o.keep
			}
			if o.unused != "" {
				d, err := parseAge(o.unused)
				if err != nil {
					return usagef("--unused-for: %v", err)
				}
				opts.UnusedSince = time.Now().Add(-d)
			}
			switch {
			case o.all && (keepGiven || o.unused != ""):
				return usagef("--all removes everything: give it alone")
			case o.all:
				opts.Keep = []string{}
			case !keepGiven && o.unused == "":
				return usagef("say what to remove: --unused-for DURATION, --keep KEY or --all")
			}
			c, err := openCache(o.cacheDir)
			if err != nil {
				return err
			}
			verb := "removed"
			if o.dryRun {
				verb = "would remove"
			}
			if !o.quiet {
				opts.Progress = func(ev cache.PruneEvent) {
					fmt.Fprintf(e.stderr, "%s %s %s (%s, last used %s)\n", verb, ev.Kind, ev.Name, mib(ev.Size), ev.LastUsed.Format(time.DateTime))
				}
			}
			rep, err := c.Prune(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s %d items (%s) from %s; %d items (%s) kept\n", verb, rep.Removed, mib(rep.RemovedBytes), c.Dir(), rep.Kept, mib(rep.KeptBytes))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cacheDir, "cache", "", "cache `DIR` (default $NODEBAKE_CACHE or the user cache directory)")
	f.StringVar(&o.unused, "unused-for", "", "remove items not used for `DURATION` (720h, 30d)")
	f.StringArrayVar(&o.keep, "keep", nil, "keep the entry with this `KEY` (or the blob with this digest), remove the rest; repeatable")
	f.BoolVar(&o.all, "all", false, "remove everything")
	f.BoolVar(&o.dryRun, "dry-run", false, "print what would be removed, remove nothing")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the summary")
	return cmd
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
