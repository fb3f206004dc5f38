// Package argocd runs the modelfleet resource customizations (integrations/argocd) in Argo CD's
// own Lua engine, github.com/argoproj/argo-cd/v3/util/lua, the code Argo CD's application
// controller (health) and API server (actions) run.
//
// Two ways in, as Argo CD has two:
//
//   - built in: the resource_customizations layout (<group>/<kind>/health.lua,
//     health_test.yaml, actions/discovery.lua, actions/<name>/action.lua, actions/action_test.yaml),
//     run and compared the way Argo CD's own TestLuaHealthScript and TestLuaResourceActionsScript
//     (util/lua/health_test.go, custom_actions_test.go) do, so the folder can be contributed
//     upstream as it is;
//   - argocd-cm: integrations/argocd/argocd-cm.yaml read by Argo CD's settings manager
//     (util/settings, the resource.customizations.<type>.<group_kind> keys) into the
//     ResourceOverrides the controller and the API server hand to lua.VM.
package argocd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/argoproj/gitops-engine/pkg/diff"
	"github.com/argoproj/gitops-engine/pkg/health"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	applicationpkg "github.com/argoproj/argo-cd/v3/pkg/apiclient/application"
	appsv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/cli"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

// customizations is integrations/argocd, seen from this package's folder (go test's working dir).
const customizations = "../../../integrations/argocd"

// The test file formats, as in Argo CD's util/lua tests.

type TestStructure struct {
	Tests []IndividualTest `yaml:"tests"`
}

type IndividualTest struct {
	InputPath    string              `yaml:"inputPath"`
	HealthStatus health.HealthStatus `yaml:"healthStatus"`
}

type ActionTestStructure struct {
	DiscoveryTests []IndividualDiscoveryTest `yaml:"discoveryTests"`
	ActionTests    []IndividualActionTest    `yaml:"actionTests"`
}

type IndividualDiscoveryTest struct {
	InputPath string                  `yaml:"inputPath"`
	Result    []appsv1.ResourceAction `yaml:"result"`
}

type IndividualActionTest struct {
	Action               string            `yaml:"action"`
	InputPath            string            `yaml:"inputPath"`
	ExpectedOutputPath   string            `yaml:"expectedOutputPath"`
	ExpectedErrorMessage string            `yaml:"expectedErrorMessage"`
	InputStr             string            `yaml:"input"`
	Parameters           map[string]string `yaml:"parameters"`
}

// kindDir is one <group>/<kind> folder holding a health.lua or an actions/action_test.yaml.
type kindDir struct {
	path string // on disk
	key  string // "<group>/<kind>", the key Argo CD looks scripts up by
}

func kindDirs(t *testing.T, marker string) []kindDir {
	t.Helper()
	var dirs []kindDir
	err := filepath.Walk(customizations, func(path string, _ os.FileInfo, err error) error {
		require.NoError(t, err)
		if filepath.Base(path) != marker {
			return nil
		}
		dir := filepath.Dir(path)
		if marker == "action_test.yaml" {
			dir = filepath.Dir(dir)
		}
		rel, err := filepath.Rel(customizations, dir)
		require.NoError(t, err)
		dirs = append(dirs, kindDir{path: dir, key: filepath.ToSlash(rel)})
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, dirs, "no %s under %s", marker, customizations)
	return dirs
}

func getObj(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	yamlBytes, err := os.ReadFile(path)
	require.NoError(t, err)
	obj := make(map[string]any)
	err = yaml.Unmarshal(yamlBytes, &obj)
	require.NoError(t, err)
	return &unstructured.Unstructured{Object: obj}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

func healthTests(t *testing.T, dir kindDir) []IndividualTest {
	t.Helper()
	var resourceTest TestStructure
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, filepath.Join(dir.path, "health_test.yaml"))), &resourceTest))
	require.NotEmpty(t, resourceTest.Tests)
	return resourceTest.Tests
}

func actionTests(t *testing.T, dir kindDir) ActionTestStructure {
	t.Helper()
	var resourceTest ActionTestStructure
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, filepath.Join(dir.path, "actions", "action_test.yaml"))), &resourceTest))
	require.NotEmpty(t, resourceTest.DiscoveryTests)
	require.NotEmpty(t, resourceTest.ActionTests)
	return resourceTest
}

// builtIn is what Argo CD's getPredefinedLuaScripts would read for a customization shipped in
// its resource_customizations folder: <key>/<file>.
func builtIn(t *testing.T, dir kindDir, file string) string {
	t.Helper()
	return readFile(t, filepath.Join(dir.path, file))
}

// argocdOverrides reads integrations/argocd/argocd-cm.yaml with Argo CD's own settings manager,
// as the application controller and the API server do with the argocd-cm ConfigMap.
func argocdOverrides(t *testing.T) map[string]appsv1.ResourceOverride {
	t.Helper()
	var cm corev1.ConfigMap
	require.NoError(t, yaml.UnmarshalStrict([]byte(readFile(t, filepath.Join(customizations, "argocd-cm.yaml"))), &cm))
	require.Equal(t, "argocd-cm", cm.Name)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	mgr := settings.NewSettingsManager(ctx, fake.NewClientset(&cm), cm.Namespace)
	overrides, err := mgr.GetResourceOverrides()
	require.NoError(t, err)
	return overrides
}

// TestLuaHealthScript: every health_test.yaml case through the built-in path, exactly as Argo
// CD's TestLuaHealthScript runs its own (lua.VM with UseOpenLibs, as for every built-in script).
func TestLuaHealthScript(t *testing.T) {
	for _, dir := range kindDirs(t, "health.lua") {
		for _, test := range healthTests(t, dir) {
			t.Run(filepath.Join(dir.key, test.InputPath), func(t *testing.T) {
				vm := lua.VM{
					UseOpenLibs: true,
				}
				obj := getObj(t, filepath.Join(dir.path, test.InputPath))
				require.Equal(t, dir.key, lua.GetConfigMapKey(obj.GroupVersionKind()), "the folder must be named after the object's group/kind")
				script := builtIn(t, dir, "health.lua")
				result, err := vm.ExecuteHealthLua(obj, script)
				require.NoError(t, err)
				assert.Equal(t, &test.HealthStatus, result)
			})
		}
	}
}

// TestLuaResourceActionsScript: every action_test.yaml case through the built-in path, as Argo
// CD's TestLuaResourceActionsScript runs its own (discovery with open libraries, actions without,
// "to ensure tests reflect the same privileges that API server has"), plus an exact comparison
// of the whole returned object.
func TestLuaResourceActionsScript(t *testing.T) {
	for _, dir := range kindDirs(t, "action_test.yaml") {
		resourceTest := actionTests(t, dir)
		for _, test := range resourceTest.DiscoveryTests {
			t.Run(dir.key+"/discovery/"+test.InputPath, func(t *testing.T) {
				vm := lua.VM{
					UseOpenLibs: true,
				}
				obj := getObj(t, filepath.Join(dir.path, "actions", test.InputPath))
				require.Equal(t, dir.key, lua.GetConfigMapKey(obj.GroupVersionKind()))
				discoveryLua := builtIn(t, dir, "actions/discovery.lua")
				result, err := vm.ExecuteResourceActionDiscovery(obj, []string{discoveryLua})
				require.NoError(t, err)
				for i := range result {
					assert.Contains(t, test.Result, result[i])
				}
				assert.ElementsMatch(t, test.Result, result)
			})
		}
		for _, test := range resourceTest.ActionTests {
			t.Run(fmt.Sprintf("%s/actions/%s/%s", dir.key, test.Action, test.InputPath), func(t *testing.T) {
				vm := lua.VM{
					// As upstream: no open libraries, the privileges the API server gives actions.
				}
				actionLua := builtIn(t, dir, filepath.Join("actions", test.Action, "action.lua"))
				runAction(t, vm, filepath.Join(dir.path, "actions"), test, actionLua)
			})
		}
	}
}

// TestArgocdCM: the same cases, with the scripts Argo CD's settings manager reads from
// integrations/argocd/argocd-cm.yaml, run the way the controller (health) and the API server
// (discovery and actions) run argocd-cm customizations: no open libraries unless
// resource.customizations.useOpenLibs says so, which the snippet does not.
func TestArgocdCM(t *testing.T) {
	overrides := argocdOverrides(t)

	for _, dir := range kindDirs(t, "health.lua") {
		override, ok := overrides[dir.key]
		require.True(t, ok, "argocd-cm has no resource.customizations for %s", dir.key)
		assert.False(t, override.UseOpenLibs, "argocd-cm scripts must work without the open libraries")
		for _, test := range healthTests(t, dir) {
			t.Run("health/"+filepath.Join(dir.key, test.InputPath), func(t *testing.T) {
				obj := getObj(t, filepath.Join(dir.path, test.InputPath))
				// gitops-engine's entry point, with the overrides the controller passes it.
				result, err := health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
				require.NoError(t, err)
				assert.Equal(t, &test.HealthStatus, result)
			})
		}
	}

	for _, dir := range kindDirs(t, "action_test.yaml") {
		resourceTest := actionTests(t, dir)
		vm := lua.VM{ResourceOverrides: overrides} // as server/application.go builds it
		for _, test := range resourceTest.DiscoveryTests {
			t.Run("discovery/"+filepath.Join(dir.key, test.InputPath), func(t *testing.T) {
				obj := getObj(t, filepath.Join(dir.path, "actions", test.InputPath))
				scripts, err := vm.GetResourceActionDiscovery(obj)
				require.NoError(t, err)
				require.Len(t, scripts, 1, "exactly the argocd-cm discovery script")
				result, err := vm.ExecuteResourceActionDiscovery(obj, scripts)
				require.NoError(t, err)
				assert.ElementsMatch(t, test.Result, result)
				for _, action := range result {
					_, err := vm.GetResourceAction(obj, action.Name)
					assert.NoError(t, err, "action %s is offered but argocd-cm does not define it", action.Name)
				}
			})
		}
		for _, test := range resourceTest.ActionTests {
			t.Run(fmt.Sprintf("actions/%s/%s/%s", dir.key, test.Action, test.InputPath), func(t *testing.T) {
				obj := getObj(t, filepath.Join(dir.path, "actions", test.InputPath))
				action, err := vm.GetResourceAction(obj, test.Action)
				require.NoError(t, err)
				runAction(t, vm, filepath.Join(dir.path, "actions"), test, action.ActionLua)
			})
		}
	}
}

// runAction runs one action test and compares like Argo CD's TestLuaResourceActionsScript
// (gitops-engine diff of expected and returned object); then, stricter than upstream, it also
// requires the returned object to equal the expected one as JSON, so that a field the expected
// output leaves out (a clock value, say) fails here.
func runAction(t *testing.T, vm lua.VM, actionsDir string, test IndividualActionTest, actionLua string) {
	t.Helper()
	sourceObj := getObj(t, filepath.Join(actionsDir, test.InputPath))
	var params []*applicationpkg.ResourceActionParameters
	for k, v := range test.Parameters {
		params = append(params, &applicationpkg.ResourceActionParameters{Name: &k, Value: &v})
	}
	impactedResources, err := vm.ExecuteResourceAction(sourceObj, actionLua, params)
	if test.ExpectedErrorMessage != "" {
		assert.EqualError(t, err, test.ExpectedErrorMessage)
		return
	}
	require.NoError(t, err)
	expectedObjects := getExpectedObjectList(t, filepath.Join(actionsDir, test.ExpectedOutputPath))
	require.Len(t, impactedResources, len(expectedObjects.Items))
	for _, impactedResource := range impactedResources {
		result := impactedResource.UnstructuredObj
		expectedObj := findFirstMatchingItem(expectedObjects.Items, func(u unstructured.Unstructured) bool {
			return u.GroupVersionKind() == result.GroupVersionKind() && u.GetName() == result.GetName() && u.GetNamespace() == result.GetNamespace()
		})
		require.NotNil(t, expectedObj)
		require.Equal(t, lua.PatchOperation, impactedResource.K8SOperation)
		assert.Equal(t, sourceObj.GroupVersionKind(), result.GroupVersionKind())
		assert.Equal(t, sourceObj.GetName(), result.GetName())
		assert.Equal(t, sourceObj.GetNamespace(), result.GetNamespace())

		diffResult, err := diff.Diff(expectedObj, result)
		require.NoError(t, err)
		if diffResult.Modified {
			t.Error("Output does not match input:")
			require.NoError(t, cli.PrintDiff(test.Action, expectedObj, result))
		}
		assert.Equal(t, asJSON(t, expectedObj.Object), asJSON(t, result.Object))
	}
}

// asJSON is obj through a JSON round trip: numbers become float64 on both sides, as Lua returns them.
func asJSON(t *testing.T, obj map[string]any) map[string]any {
	t.Helper()
	data, err := json.Marshal(obj)
	require.NoError(t, err)
	out := map[string]any{}
	require.NoError(t, json.Unmarshal(data, &out))
	return out
}

// getExpectedObjectList as in Argo CD: a single object (old-style action output) or a list.
func getExpectedObjectList(t *testing.T, path string) *unstructured.UnstructuredList {
	t.Helper()
	yamlBytes, err := os.ReadFile(path)
	require.NoError(t, err)
	unstructuredList := &unstructured.UnstructuredList{}
	if bytes.HasPrefix(yamlBytes, []byte("-")) {
		var objList []map[string]any
		require.NoError(t, yaml.Unmarshal(yamlBytes, &objList))
		for _, obj := range objList {
			unstructuredObj, ok := obj["unstructuredObj"].(map[string]any)
			require.True(t, ok, "Wrong type of unstructuredObj")
			unstructuredList.Items = append(unstructuredList.Items, unstructured.Unstructured{Object: unstructuredObj})
		}
	} else {
		obj := make(map[string]any)
		require.NoError(t, yaml.Unmarshal(yamlBytes, &obj))
		unstructuredList.Items = []unstructured.Unstructured{{Object: obj}}
	}
	return unstructuredList
}

func findFirstMatchingItem(items []unstructured.Unstructured, f func(unstructured.Unstructured) bool) *unstructured.Unstructured {
	for i := range items {
		if f(items[i]) {
			return &items[i]
		}
	}
	return nil
}

// TestEveryOfferedActionHasAScriptAndATest: discovery, action scripts and action tests agree.
func TestEveryOfferedActionHasAScriptAndATest(t *testing.T) {
	for _, dir := range kindDirs(t, "action_test.yaml") {
		resourceTest := actionTests(t, dir)
		offered := map[string]bool{}
		for _, test := range resourceTest.DiscoveryTests {
			for _, action := range test.Result {
				offered[action.Name] = true
			}
		}
		tested := map[string]bool{}
		for _, test := range resourceTest.ActionTests {
			tested[test.Action] = true
		}
		scripts := map[string]bool{}
		matches, err := filepath.Glob(filepath.Join(dir.path, "actions", "*", "action.lua"))
		require.NoError(t, err)
		for _, m := range matches {
			scripts[filepath.Base(filepath.Dir(m))] = true
		}
		assert.Equal(t, sorted(offered), sorted(scripts), dir.key)
		assert.Equal(t, sorted(offered), sorted(tested), dir.key)
	}
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestActionsSeeNoGlobalOs pins the engine fact behind the customizations' style: an action runs
// without the open libraries, where a global os does not exist (only `local os = require("os")`
// reaches Argo CD's safe os library), so a script written against a full Lua fails there.
func TestActionsSeeNoGlobalOs(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "modelfleet.dev/v1alpha1", "kind": "ModelRelease",
		"metadata": map[string]any{"name": "r", "namespace": "n"},
	}}
	vm := lua.VM{}
	_, err := vm.ExecuteResourceAction(obj, `obj.metadata.labels = {t = tostring(os.time())}; return obj`, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "attempt to index a non-table object(nil) with key 'time'")
	out, err := vm.ExecuteResourceAction(obj, `local os = require("os"); obj.metadata.labels = {t = tostring(os.time())}; return obj`, nil)
	require.NoError(t, err)
	require.Len(t, out, 1)
	assert.Regexp(t, `^[0-9]+$`, out[0].UnstructuredObj.GetLabels()["t"])
}

// globalOs finds `os.` used in a script that never binds a local os.
var (
	osUse    = regexp.MustCompile(`(^|[^.\w])os\.`)
	osLocal  = regexp.MustCompile(`(?m)^\s*local\s+os\s*=\s*require\(\s*"os"\s*\)`)
	stringFn = regexp.MustCompile(`(^|[^.\w])string\.|:\s*(byte|find|format|gmatch|gsub|len|lower|match|rep|reverse|sub|upper)\s*\(`)
)

// TestScriptsFitArgoCDsSandbox: no script reaches for a global os, and none uses the string
// library (argocd-cm health scripts run without it unless useOpenLibs is set).
func TestScriptsFitArgoCDsSandbox(t *testing.T) {
	var scripts []string
	err := filepath.Walk(customizations, func(path string, _ os.FileInfo, err error) error {
		require.NoError(t, err)
		if strings.HasSuffix(path, ".lua") {
			scripts = append(scripts, path)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	for _, path := range scripts {
		src := readFile(t, path)
		code := stripComments(src)
		if osUse.MatchString(code) {
			assert.Regexp(t, osLocal, src, "%s uses os without `local os = require(\"os\")`", path)
		}
		assert.NotRegexp(t, stringFn, code, "%s uses the string library", path)
	}
}

func stripComments(src string) string {
	lines := strings.Split(src, "\n")
	for i, line := range lines {
		if j := strings.Index(line, "--"); j >= 0 {
			lines[i] = line[:j]
		}
	}
	return strings.Join(lines, "\n")
}
