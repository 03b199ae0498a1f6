package csi

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Gatherer returns the metrics of every volume served, each series labelled with its volume
// ID and target path, merged with node (the node-wide cache's collector, say).
func (d *Driver) Gatherer(node prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		fams := map[string]*dto.MetricFamily{}
		add := func(in []*dto.MetricFamily, labels []*dto.LabelPair) {
			for _, f := range in {
				out := fams[f.GetName()]
				if out == nil {
					out = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type, Unit: f.Unit}
					fams[f.GetName()] = out
				}
				for _, m := range f.Metric {
					m.Label = append(m.Label, labels...)
					sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
					out.Metric = append(out.Metric, m)
				}
			}
		}
		var firstErr error
		if node != nil {
			in, err := node.Gather()
			firstErr = err
			add(in, nil)
		}
		d.mu.Lock()
		vols := make([]*volume, 0, len(d.vols))
		for _, v := range d.vols {
			vols = append(vols, v)
		}
		d.mu.Unlock()
		for _, v := range vols {
			in, err := v.metrics.Registry().Gather()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			add(in, []*dto.LabelPair{
				{Name: proto.String("volume"), Value: proto.String(v.rec.VolumeID)},
				{Name: proto.String("target"), Value: proto.String(v.rec.TargetPath)},
			})
		}
		out := make([]*dto.MetricFamily, 0, len(fams))
		for _, f := range fams {
			out = append(out, f)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
		return out, firstErr
	})
}
