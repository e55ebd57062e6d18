// referrers-registry serves go-containerregistry's OCI registry (pkg/registry) with the
// OCI 1.1 Referrers API switched on (GET /v2/<name>/referrers/<digest>), in memory, on
// the address given. The supply-chain tests use it to discover signatures and
// attestations through the Referrers API, which Debian's distribution registry (2.8) and
// distribution v3 do not implement. Built by hack/build-binaries.sh; test-only.
package main

import (
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("address", "127.0.0.1:0", "address to listen on (loopback)")
	flag.Parse()
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalln(err)
	}
	log.Printf("serving on %s", listener.Addr())
	server := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler:           registry.New(registry.WithReferrersSupport(true)),
	}
	if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalln(err)
	}
}
