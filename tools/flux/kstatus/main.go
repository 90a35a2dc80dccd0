// Command kstatus prints the status that kstatus (sigs.k8s.io/cli-utils/pkg/kstatus),
// the library Flux, Argo CD's gitops-engine and kpt judge health with, computes for
// each object it is given, as one JSON array on stdout.
//
// secretsync's statuses must follow kstatus conventions; the tests ask this program,
// rather than a Python re-implementation of the rules, what the real library says.
//
//	kstatus [--kubeconfig FILE] [-n NAMESPACE] RESOURCE[.GROUP]/NAME ...
//	kstatus --stdin < objects.json   # one object, a JSON array, or a List with items
//
// RESOURCE may be a plural, singular or short name (secretsyncs.secretsync.io/db,
// ssync/db). A missing object is reported with kstatus's own NotFound status; any other
// error fails the whole run (exit 1), so that a caller never mistakes it for a status.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Result is one line of the output: which object, and what kstatus says of it.
type Result struct {
	APIVersion string             `json:"apiVersion,omitempty"`
	Kind       string             `json:"kind,omitempty"`
	Namespace  string             `json:"namespace,omitempty"`
	Name       string             `json:"name"`
	Ref        string             `json:"ref,omitempty"`
	Status     status.Status      `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	namespace := flag.String("n", "", "namespace of namespaced references (default: the kubeconfig context's)")
	stdin := flag.Bool("stdin", false, "compute the status of the objects read as JSON from stdin, offline")
	flag.Parse()

	var (
		results []Result
		err     error
	)
	if *stdin {
		results, err = fromStdin(os.Stdin)
	} else {
		results, err = fromCluster(*kubeconfig, *namespace, flag.Args())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", " ")
	if err := out.Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func compute(obj *unstructured.Unstructured, ref string) (Result, error) {
	res, err := status.Compute(obj)
	if err != nil {
		return Result{}, fmt.Errorf("%s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	conditions := res.Conditions
	if conditions == nil {
		conditions = []status.Condition{}
	}
	return Result{
		APIVersion: obj.GetAPIVersion(),
		Kind:       obj.GetKind(),
		Namespace:  obj.GetNamespace(),
		Name:       obj.GetName(),
		Ref:        ref,
		Status:     res.Status,
		Message:    res.Message,
		Conditions: conditions,
	}, nil
}

func fromStdin(r io.Reader) ([]Result, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	// apimachinery's JSON decoding keeps integers as int64, as kstatus expects of
	// fields such as metadata.generation (encoding/json would make them float64).
	var doc any
	if err := utiljson.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	var items []any
	switch v := doc.(type) {
	case []any:
		items = v
	case map[string]any:
		if list, ok := v["items"].([]any); ok && strings.HasSuffix(fmt.Sprint(v["kind"]), "List") {
			items = list
		} else {
			items = []any{v}
		}
	default:
		return nil, errors.New("stdin: expected a JSON object, array or List")
	}
	results := make([]Result, 0, len(items))
	for _, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, errors.New("stdin: an item is not a JSON object")
		}
		result, err := compute(&unstructured.Unstructured{Object: obj}, "")
		if err != nil {
			return nil, err
		}
		results = append(results, result)
	}
	return results, nil
}

func fromCluster(kubeconfig, namespace string, refs []string) ([]Result, error) {
	if len(refs) == 0 {
		return nil, errors.New("name at least one RESOURCE[.GROUP]/NAME, or use --stdin")
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	clientConfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	config, err := clientConfig.ClientConfig()
	if err != nil {
		return nil, err
	}
	if namespace == "" {
		if namespace, _, err = clientConfig.Namespace(); err != nil {
			return nil, err
		}
	}
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	cached := memory.NewMemCacheClient(disco)
	// The shortcut expander resolves short names (ssync) as kubectl does.
	mapper := restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(cached), cached, nil)
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, err
	}

	results := make([]Result, 0, len(refs))
	for _, ref := range refs {
		resource, name, ok := strings.Cut(ref, "/")
		if !ok || resource == "" || name == "" {
			return nil, fmt.Errorf("%q is not RESOURCE[.GROUP]/NAME", ref)
		}
		gvr, err := mapper.ResourceFor(schema.ParseGroupResource(resource).WithVersion(""))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		gvk, err := mapper.KindFor(gvr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		var getter dynamic.ResourceInterface = client.Resource(gvr)
		objNamespace := ""
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			objNamespace = namespace
			getter = client.Resource(gvr).Namespace(namespace)
		}
		obj, err := getter.Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			results = append(results, Result{
				APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Namespace: objNamespace,
				Name: name, Ref: ref, Status: status.NotFoundStatus,
				Message: "Resource not found", Conditions: []status.Condition{},
			})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		result, err := compute(obj, ref)
		if err != nil {
			return nil, err
		}
		results = append(results, result)
	}
	return results, nil
}
