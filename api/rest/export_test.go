package rest

import (
	"net/http"

	"github.com/pincluster/pincluster"
	"github.com/pincluster/pincluster/api/internal/httpx"
)

func streamTest(w http.ResponseWriter, seq func(yield func(pincluster.GlobalPinInfo, error) bool)) {
	httpx.StreamNDJSON(w, seq, func(g pincluster.GlobalPinInfo) any { return toGlobalPinInfoJSON(g) }, func(error) {})
}
