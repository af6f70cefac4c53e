package web

import (
	"encoding/json"
	"hash/maphash"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"imchannel/store"
)

// fill sets every reachable field of v to a non-zero value: pointers get a
// value, slices one element, strings and numbers something.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage{}) {
			v.SetBytes([]byte(`{"a":1}`))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(false)
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Float64:
		v.SetFloat(1.5)
	default:
		panic("fill: unhandled kind " + v.Kind().String() + " at " + v.Type().String())
	}
}

// leaves calls mutate for every leaf field of v, with a func that changes it.
func leaves(v reflect.Value, path string, each func(path string, change func())) {
	switch v.Kind() {
	case reflect.Pointer:
		each(path+" (nil)", func() { v.Set(reflect.Zero(v.Type())) })
		leaves(v.Elem(), path, each)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			each(path, func() { v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second))) })
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				leaves(v.Field(i), path+"."+f.Name, each)
			}
		}
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage{}) {
			each(path, func() { v.SetBytes([]byte(`{"a":2}`)) })
			return
		}
		each(path+" (len)", func() { v.Set(reflect.Append(v, v.Index(0))) })
		leaves(v.Index(0), path+"[0]", each)
	case reflect.String:
		each(path, func() { v.SetString(v.String() + "y") })
	case reflect.Bool:
		each(path, func() { v.SetBool(!v.Bool()) })
	case reflect.Int, reflect.Int64:
		each(path, func() { v.SetInt(v.Int() + 1) })
	case reflect.Float64:
		each(path, func() { v.SetFloat(v.Float() + 1) })
	}
}

func TestViewKeyCoversEveryField(t *testing.T) {
	seed := maphash.MakeSeed()
	var count int
	var base msgView
	fill(reflect.ValueOf(&base))
	key := viewKey(seed, &base)
	// Walk a fresh copy per leaf: each change is checked on its own.
	leaves(reflect.ValueOf(&base).Elem(), "msgView", func(path string, _ func()) {
		var v msgView
		fill(reflect.ValueOf(&v))
		require.Equal(t, key, viewKey(seed, &v), "fill is not deterministic")
		var found bool
		leaves(reflect.ValueOf(&v).Elem(), "msgView", func(p string, change func()) {
			if p == path && !found {
				found = true
				change()
			}
		})
		require.True(t, found, path)
		require.NotEqual(t, key, viewKey(seed, &v), "viewKey ignores %s: hash it, or a changed message shows stale", path)
		count++
	})
	require.Greater(t, count, 60)
}

// TestThreadShowsChangesThroughTheCache renders a thread, changes its
// messages, and checks the page shows the new state.
func TestThreadShowsChangesThroughTheCache(t *testing.T) {
	e := newEnv(t)
	o := e.queue(out("o1", customer, "hello there"))[0]
	e.save(in("i1", customer, "hi"))
	path := "/conversations/" + o.ConversationID
	_, page := e.get(path)
	require.Contains(t, page, `<span class="status-label">queued</span>`)
	e.report(store.Report{Provider: store.ProviderInfobip, ExternalID: "o1", Status: store.StatusDelivered, At: time.Now().Add(time.Minute)})
	e.save(&store.Message{Provider: store.ProviderInfobip, ExternalID: "r1", From: customer, To: bizNumber,
		Type: store.TypeReaction, Target: "o1", ReactionEmoji: "🎉"})
	_, page = e.get(path)
	require.Contains(t, page, `<span class="status-label">delivered</span>`)
	require.Contains(t, page, "🎉")
	e.save(&store.Message{Provider: store.ProviderInfobip, ExternalID: "d1", From: customer, To: bizNumber,
		Type: store.TypeDelete, Target: "i1"})
	_, page = e.get(path)
	require.Contains(t, page, "message deleted")
	require.Equal(t, 1, strings.Count(page, "message deleted"))
	_, frag := e.get("/fragments/messages/" + o.MessageID)
	require.Contains(t, frag, `<span class="status-label">delivered</span>`)
}
