// Command web is the container image the end-to-end test runs on its
// workers. It is static (CGO_ENABLED=0) and has no other file in its image.
//
//	web serve [ADDR]         answer GET / with "hello from <hostname>" (ADDR :80)
//	web STEP [-- STEP]...    run the steps in order, stopping at the first
//	                         that fails:
//	  fetch URL              GET URL, retrying for about 4 minutes, until HTTP 200
//	  write FILE TEXT        write TEXT to FILE (creating its directory), synced
//	  check FILE TEXT        FILE holds exactly TEXT
//	  report FILE            the content of FILE
//	  noanswer URL           GET URL once: no answer within 10 s (its packets
//	                         dropped); an answer or a refused connection fails
//
// The steps' outcomes go to the container's termination message
// (/dev/termination-log) as package probe writes them, so that the test
// reads them from the pod's status through the API server, without
// reaching the kubelet.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodebake/nodebake/test/e2e/internal/probe"
)

// terminationLog is where Kubernetes reads a container's termination
// message from by default.
const terminationLog = "/dev/termination-log"

// fetchFor is how long fetch keeps trying: the pod that runs it may start
// before the server it fetches from is ready.
const fetchFor = 4 * time.Minute

// noAnswerFor is how long noanswer waits for an answer that must not come.
const noAnswerFor = 10 * time.Second

func main() {
	if len(os.Args) < 2 {
		fail("usage: web serve [ADDR] | STEP [-- STEP]... (fetch URL, write FILE TEXT, check FILE TEXT, report FILE, noanswer URL)")
	}
	if os.Args[1] == "serve" {
		addr := ":80"
		switch len(os.Args) {
		case 2:
		case 3:
			addr = os.Args[2]
		default:
			fail(fmt.Sprintf("bad arguments %q", os.Args[1:]))
		}
		if err := serve(addr); err != nil {
			fail(err.Error())
		}
		return
	}
	var steps []probe.Step
	ok := true
	for _, args := range probe.Split(os.Args[1:]) {
		st := probe.Step{Step: strings.Join(args, " ")}
		start := time.Now()
		res, attempts, err := run(args)
		st.Millis, st.Attempts = time.Since(start).Milliseconds(), attempts
		if err != nil {
			st.Error, ok = err.Error(), false
		} else {
			st.OK, st.Result = true, res
		}
		steps = append(steps, st)
		fmt.Printf("%s: ok=%v %s%s\n", st.Step, st.OK, st.Result, st.Error)
		if !ok {
			break
		}
	}
	b, err := probe.Message(steps)
	if err != nil {
		fail(err.Error())
	}
	_ = os.WriteFile(terminationLog, b, 0o644)
	if !ok {
		os.Exit(1)
	}
}

// run runs one step; attempts counts a fetch's tries (0 for the others).
func run(args []string) (result string, attempts int, err error) {
	if len(args) == 0 {
		return "", 0, errors.New("an empty step")
	}
	mode, rest := args[0], args[1:]
	switch {
	case mode == "fetch" && len(rest) == 1:
		return fetch(rest[0])
	case mode == "write" && len(rest) == 2:
		result, err = write(rest[0], rest[1])
	case mode == "check" && len(rest) == 2:
		result, err = check(rest[0], rest[1])
	case mode == "report" && len(rest) == 1:
		result, err = report(rest[0])
	case mode == "noanswer" && len(rest) == 1:
		result, err = noAnswer(rest[0], noAnswerFor)
	default:
		err = fmt.Errorf("bad step %q", args)
	}
	return result, 0, err
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "web: "+msg)
	_ = os.WriteFile(terminationLog, []byte("web: "+msg), 0o644)
	os.Exit(1)
}

func serve(addr string) error {
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Printf("serving on %s as %s\n", addr, host)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func fetch(url string) (string, int, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(fetchFor)
	var last error
	for attempt := 1; ; attempt++ {
		body, err := get(client, url)
		if err == nil {
			return body, attempt, nil
		}
		last = fmt.Errorf("attempt %d: %w", attempt, err)
		fmt.Fprintln(os.Stderr, "web: "+last.Error())
		if time.Now().After(deadline) {
			return "", attempt, fmt.Errorf("fetching %s for %s: %w", url, fetchFor, last)
		}
		time.Sleep(2 * time.Second)
	}
}

func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}

func write(file, text string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(file)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return "wrote " + file, nil
}

func check(file, want string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	if string(b) != want {
		return "", fmt.Errorf("%s holds %q, want %q", file, b, want)
	}
	return string(b), nil
}

func report(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, probe.MaxMessage+1))
	if err != nil {
		return "", err
	}
	if len(b) > probe.MaxMessage {
		return "", fmt.Errorf("%s: more than %d bytes", file, probe.MaxMessage)
	}
	return string(b), nil
}

// noAnswer GETs url once and succeeds only when no answer comes within
// timeout, as when a firewall drops the packets: an answer, or an error
// other than the timeout (a refused connection, say), fails.
func noAnswer(url string, timeout time.Duration) (string, error) {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err == nil {
		resp.Body.Close()
		return "", fmt.Errorf("%s answered: %s", url, resp.Status)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("no answer within %s", timeout), nil
	}
	return "", fmt.Errorf("want no answer from %s (packets dropped), got: %w", url, err)
}
