// Command argocd-lua runs the modelfleet customizations of an argocd-cm ConfigMap in Argo CD's
// Lua engine on a live object, the way Argo CD does, for tests against the real operator
// (tests/integration/operator/test_argocd_live.py):
//
//	argocd-lua ARGOCD_CM health        < object.json   → {"status": ..., "message": ...}
//	argocd-lua ARGOCD_CM actions       < object.json   → the actions offered, as discovery returns them
//	argocd-lua ARGOCD_CM action NAME   < object.json   → the JSON merge patch Argo CD's API server sends
//
// The ConfigMap is read by Argo CD's settings manager; health goes through gitops-engine's
// GetResourceHealth with lua.ResourceHealthOverrides (the application controller), actions
// through lua.VM{ResourceOverrides} and a merge patch of live and returned object (the API
// server's RunResourceAction).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/gitops-engine/pkg/health"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	appsv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: argocd-lua ARGOCD_CM health|actions|action NAME < object.json")
	}
	overrides, err := loadOverrides(args[0])
	if err != nil {
		return err
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal(data, &obj.Object); err != nil {
		return fmt.Errorf("object: %w", err)
	}
	vm := lua.VM{ResourceOverrides: overrides}
	var result any
	switch {
	case args[1] == "health":
		result, err = health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
	case args[1] == "actions":
		var scripts []string
		if scripts, err = vm.GetResourceActionDiscovery(obj); err == nil {
			result, err = vm.ExecuteResourceActionDiscovery(obj, scripts)
		}
	case args[1] == "action" && len(args) == 3:
		result, err = mergePatch(vm, obj, data, args[2])
	default:
		return fmt.Errorf("unknown command %q", args[1:])
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(result)
}

func loadOverrides(path string) (map[string]appsv1.ResourceOverride, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return settings.NewSettingsManager(ctx, fake.NewClientset(&cm), cm.Namespace).GetResourceOverrides()
}

func mergePatch(vm lua.VM, obj *unstructured.Unstructured, live []byte, name string) (json.RawMessage, error) {
	action, err := vm.GetResourceAction(obj, name)
	if err != nil {
		return nil, err
	}
	impacted, err := vm.ExecuteResourceAction(obj, action.ActionLua, nil)
	if err != nil {
		return nil, err
	}
	if len(impacted) != 1 || impacted[0].K8SOperation != lua.PatchOperation {
		return nil, fmt.Errorf("action %s: expected one patch of the object, got %d resources", name, len(impacted))
	}
	updated, err := json.Marshal(impacted[0].UnstructuredObj)
	if err != nil {
		return nil, err
	}
	return jsonpatch.CreateMergePatch(live, updated)
}
