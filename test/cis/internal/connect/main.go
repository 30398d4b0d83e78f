// Command connect opens a TCP connection from a given local address and
// says whether it succeeded: the guest-side probe of the CIS test uses it
// to show that the kubelet's and kube-proxy's IP address filters let an
// allowed address in and keep a denied one out.
//
//	connect -from ADDR -to HOST:PORT [-timeout D]
//	connect -from ADDR -listen IP [-timeout D]
//	connect -serve HOST:PORT
//
// With -listen it connects to a listener of its own on IP (a port the
// kernel picks), outside any filtered unit: the control that shows the
// source address works at all. It prints "ok" or "failed: REASON" and
// exits 0 either way; 2 on bad usage. With -serve it accepts connections
// on HOST:PORT until it is killed (started inside a unit's cgroup, its
// socket is under the unit's IP filter).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	from := flag.String("from", "", "local IP address to connect from")
	to := flag.String("to", "", "HOST:PORT to connect to")
	listen := flag.String("listen", "", "IP address to listen on and connect to (the control)")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to wait for the connection")
	serve := flag.String("serve", "", "HOST:PORT to accept connections on until killed")
	flag.Parse()
	if *serve != "" {
		l, err := net.Listen("tcp", *serve)
		if err != nil {
			fmt.Fprintf(os.Stderr, "connect: %v\n", err)
			os.Exit(1)
		}
		accept(l)
		return
	}
	if *from == "" || (*to == "") == (*listen == "") || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: connect -from ADDR (-to HOST:PORT | -listen IP) [-timeout D]")
		os.Exit(2)
	}
	target := *to
	if *listen != "" {
		l, err := net.Listen("tcp", net.JoinHostPort(*listen, "0"))
		if err != nil {
			fmt.Printf("failed: listening: %v\n", err)
			return
		}
		defer l.Close()
		go accept(l)
		target = l.Addr().String()
	}
	d := net.Dialer{Timeout: *timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(*from)}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		fmt.Printf("failed: %v\n", err)
		return
	}
	c.Close()
	fmt.Println("ok")
}

// accept takes connections and closes them, until the listener fails.
func accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
