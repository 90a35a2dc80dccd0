// Command pause holds a Pod's namespaces for as long as the Pod lives: the image
// that Kubernetes normally pulls for this (registry.k8s.io/pause) cannot be reached
// here, and any static program that waits for signals will do. As the Pod's first
// process it also reaps the orphans that the kernel hands to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
