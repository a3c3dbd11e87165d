// A webhook receiver for the notifier benchmark: verifies Standard Webhooks signatures as devtools/hooks.py
// does (HMAC-SHA256 over "id.timestamp.body", any active secret, a 300 s timestamp tolerance), keeps one copy
// per webhook-id, and answers GET /count with the number of distinct notices held. Prints its port first.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const tolerance = 300

type receiver struct {
	keys    [][]byte
	mu      sync.Mutex
	seen    map[string]struct{}
	copies  int
	refused int
}

func (r *receiver) verify(h http.Header, body []byte) (string, bool) {
	id, stamp, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || stamp == "" || sigs == "" {
		return "", false
	}
	ts, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return "", false
	}
	if d := time.Now().Unix() - ts; d > tolerance || d < -tolerance {
		return "", false
	}
	offered := strings.Fields(sigs)
	for _, key := range r.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + stamp + "."))
		mac.Write(body)
		expected := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		for _, s := range offered {
			if hmac.Equal([]byte(expected), []byte(s)) {
				return id, true
			}
		}
	}
	return "", false
}

func (r *receiver) hook(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet && req.URL.Path == "/count" {
		r.mu.Lock()
		n, copies, refused := len(r.seen), r.copies, r.refused
		r.mu.Unlock()
		fmt.Fprintf(w, "%d %d %d\n", n, copies, refused)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil || req.Method != http.MethodPost {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id, ok := r.verify(req.Header, body)
	r.mu.Lock()
	if ok {
		r.copies++
		r.seen[id] = struct{}{}
	} else {
		r.refused++
	}
	r.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func main() {
	secrets := flag.String("secrets", "", "comma-separated whsec_ secrets")
	flag.Parse()
	r := &receiver{seen: map[string]struct{}{}}
	for _, s := range strings.Split(*secrets, ",") {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || !strings.HasPrefix(s, "whsec_") {
			log.Fatalf("bad secret %q", s)
		}
		r.keys = append(r.keys, key)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	log.Fatal(http.Serve(listener, http.HandlerFunc(r.hook)))
}
