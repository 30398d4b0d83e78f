// Command web is the container image the end-to-end test runs on its
// workers. It is static (CGO_ENABLED=0) and has no other file in its image.
//
//	web serve [ADDR]        answer GET / with "hello from <hostname>" (ADDR :80)
//	web fetch URL           GET URL, retrying for about 60 s; exit 0 on HTTP 200
//	web write FILE TEXT     write TEXT to FILE (creating its directory), synced
//	web check FILE TEXT     exit 0 when FILE holds exactly TEXT
//	web report FILE         print FILE
//
// Every mode but serve also writes what it found to the container's
// termination message (/dev/termination-log), so the result can be read
// from the pod's status through the API server, without reaching the
// kubelet.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// terminationLog is where Kubernetes reads a container's termination
// message from by default.
const terminationLog = "/dev/termination-log"

// fetchFor is how long fetch keeps trying.
const fetchFor = 60 * time.Second

func main() {
	if len(os.Args) < 2 {
		fail("usage: web serve [ADDR] | fetch URL | write FILE TEXT | check FILE TEXT | report FILE")
	}
	args := os.Args[2:]
	var err error
	switch mode := os.Args[1]; {
	case mode == "serve" && len(args) <= 1:
		addr := ":80"
		if len(args) == 1 {
			addr = args[0]
		}
		err = serve(addr)
	case mode == "fetch" && len(args) == 1:
		err = fetch(args[0])
	case mode == "write" && len(args) == 2:
		err = write(args[0], args[1])
	case mode == "check" && len(args) == 2:
		err = check(args[0], args[1])
	case mode == "report" && len(args) == 1:
		err = report(args[0])
	default:
		err = fmt.Errorf("bad arguments %q", os.Args[1:])
	}
	if err != nil {
		fail(err.Error())
	}
}

// result prints msg and records it as the termination message.
func result(msg string) {
	fmt.Println(msg)
	_ = os.WriteFile(terminationLog, []byte(msg), 0o644)
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

func fetch(url string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(fetchFor)
	var last error
	for attempt := 1; ; attempt++ {
		body, err := get(client, url)
		if err == nil {
			result(body)
			return nil
		}
		last = fmt.Errorf("attempt %d: %w", attempt, err)
		fmt.Fprintln(os.Stderr, "web: "+last.Error())
		if time.Now().After(deadline) {
			return fmt.Errorf("fetching %s for %s: %w", url, fetchFor, last)
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

func write(file, text string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	result("wrote " + file)
	return nil
}

func check(file, want string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if string(b) != want {
		return fmt.Errorf("%s holds %q, want %q", file, b, want)
	}
	result(string(b))
	return nil
}

func report(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	result(string(b))
	return nil
}
