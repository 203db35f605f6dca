package auditmeta_test

import (
	"fmt"
	"net/http"

	"github.com/raystack/salt/audit/auditmeta"
)

// An untrusted peer is recorded as it is, whatever its headers claim;
// only a trusted proxy is believed.
func ExampleConfig_ClientIP() {
	trusted, _ := auditmeta.ParseTrustedProxies("10.0.0.0/8, 192.0.2.1")
	cfg := auditmeta.Config{TrustedProxies: trusted, ForwardedHeader: auditmeta.HeaderXForwardedFor}
	h := http.Header{"X-Forwarded-For": {"10.0.0.9"}}
	ip, _ := cfg.ClientIP(h, "198.51.100.7:5000")
	fmt.Println(ip)
	ip, _ = cfg.ClientIP(h, "192.0.2.1:5000") // a trusted proxy: its header is believed
	fmt.Println(ip)
	// Output:
	// 198.51.100.7
	// 10.0.0.9
}
