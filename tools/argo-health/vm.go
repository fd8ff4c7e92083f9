package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Timeout is how long one script may run, as in Argo CD.
const Timeout = time.Second

// Health is what a health script returns: Argo CD's HealthStatus.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Argo CD accepts these statuses; any other string becomes Unknown with invalidHealthStatus.
var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

const invalidHealthStatus = "Lua returned an invalid health status"

// safeOsNames are the os functions a user's script may call (Argo CD's safe os library exposes
// only harmless clock functions: no execute, exit, getenv, remove, rename, setenv, tmpname).
var safeOsNames = []string{"time", "date", "clock"}

var (
	safeOsOnce  sync.Once
	safeOsFuncs map[string]lua.LGFunction
)

// safeOs returns gopher-lua's own implementations of the safe os functions, taken from its os
// library opened in a scratch state, so the sandbox never holds the full os table.
func safeOs() map[string]lua.LGFunction {
	safeOsOnce.Do(func() {
		scratch := lua.NewState(lua.Options{SkipOpenLibs: true})
		defer scratch.Close()
		scratch.Push(scratch.NewFunction(lua.OpenOs))
		scratch.Push(lua.LString(lua.OsLibName))
		scratch.Call(1, 1)
		full := scratch.Get(-1).(*lua.LTable)
		safeOsFuncs = map[string]lua.LGFunction{}
		for _, name := range safeOsNames {
			safeOsFuncs[name] = full.RawGetString(name).(*lua.LFunction).GFunction
		}
	})
	return safeOsFuncs
}

func openSafeOs(L *lua.LState) int {
	L.Push(L.RegisterModule(lua.OsLibName, safeOs()))
	return 1
}

// newState is the sandbox Argo CD gives users' scripts (argocd-cm resource.customizations.health.*
// without useOpenLibs): package (for require), base, table and the safe os; no string, math, io,
// debug, coroutine or channel library. openLibs opens every library instead, as Argo CD's own test
// of its built-in scripts does.
func newState(openLibs bool) *lua.LState {
	L := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	if openLibs {
		return L
	}
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	return L
}

// toLua converts a decoded YAML/JSON value the way Argo CD does: maps become tables, lists
// 1-based arrays, numbers (float64 or integers) Lua numbers, bools and strings themselves.
func toLua(L *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v) // as Argo CD does
	case float64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []interface{}:
		arr := L.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(L, item))
		}
		return arr
	case map[string]interface{}:
		tbl := L.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(L, item))
		}
		return tbl
	}
	return lua.LNil
}

// Evaluate runs a health script on obj in a fresh sandbox with a 1 s timeout and returns what
// Argo CD would show; an error is what Argo CD reports as a failed health check.
func Evaluate(script string, obj map[string]interface{}, openLibs bool) (Health, error) {
	L := newState(openLibs)
	defer L.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Health{}, fmt.Errorf("timed out after %s: %w", Timeout, err)
		}
		return Health{}, err
	}
	ret := L.Get(-1)
	tbl, ok := ret.(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	var h Health
	for field, dst := range map[string]*string{"status": &h.Status, "message": &h.Message} {
		switch v := tbl.RawGetString(field).(type) {
		case lua.LString:
			*dst = string(v)
		case *lua.LNilType:
		default:
			return Health{}, fmt.Errorf("%s must be a string, not %s", field, v.Type())
		}
	}
	if !validStatuses[h.Status] {
		return Health{Status: "Unknown", Message: invalidHealthStatus}, nil
	}
	return h, nil
}
