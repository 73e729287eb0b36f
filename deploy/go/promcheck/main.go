// promcheck parses Prometheus text exposition (stdin) with the reference parser
// (github.com/prometheus/common/expfmt) and prints one JSON object per sample:
// {"name": ..., "labels": {...}, "value": ...}. It exits non-zero, with the parser's
// message, when the input is not valid exposition format. Used by the agent's tests.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type sample struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
}

func value(kind dto.MetricType, m *dto.Metric) float64 {
	switch kind {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	case dto.MetricType_SUMMARY:
		return float64(m.GetSummary().GetSampleCount())
	default:
		return m.GetUntyped().GetValue()
	}
}

func main() {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "promcheck: invalid exposition: %v\n", err)
		os.Exit(1)
	}
	out := json.NewEncoder(os.Stdout)
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := value(f.GetType(), m)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				v = 0
			}
			if err := out.Encode(sample{Name: name, Labels: labels, Value: v}); err != nil {
				os.Exit(2)
			}
		}
	}
}
