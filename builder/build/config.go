package build

import (
	"encoding/json"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/resolve"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

// configLayer renders the configuration and adds the first-boot program and
// the image's own description.
func configLayer(s *spec.Spec, program, specHash string, comps []resolve.ComponentInfo, base resolve.BaseInfo) ([]entry.Entry, error) {
	out, err := worker.Render(s)
	if err != nil {
		return nil, err
	}
	fb, err := worker.Firstboot(program)
	if err != nil {
		return nil, err
	}
	out = append(out, fb...)
	info := map[string]any{"name": s.Name, "arch": s.Arch, "specHash": specHash, "kubernetesVersion": s.Kubernetes.Version, "components": comps, "base": base}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	out = append(out, entry.File(worker.ImageInfo(), 0o644, append(b, '\n')))
	return out, nil
}
