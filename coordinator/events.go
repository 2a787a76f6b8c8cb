package coordinator

import (
	"sync"
	"time"
)

// EventKind names what happened.
type EventKind string

// Event kinds. Every replica publishes the state events as it applies the
// entries, so a subscriber on any member sees the same sequence (with
// Index increasing); EventLeaderChanged is local to the member.
const (
	EventMemberRegistered EventKind = "member_registered"
	EventMemberRemoved    EventKind = "member_removed"
	EventNodeEnrolled     EventKind = "node_enrolled"
	EventNodeRevoked      EventKind = "node_revoked"
	EventJobCreated       EventKind = "job_created"
	EventJobStopped       EventKind = "job_stopped"
	EventJobCompleted     EventKind = "job_completed"
	EventJobArchived      EventKind = "job_archived"
	EventJobDeleted       EventKind = "job_deleted"
	EventRoundOpened      EventKind = "round_opened"
	EventUpdateAccepted   EventKind = "update_accepted"
	EventRoundSealed      EventKind = "round_sealed"
	EventRoundClosed      EventKind = "round_closed"
	EventRoundFailed      EventKind = "round_failed"
	EventCheckpoint       EventKind = "checkpoint"
	EventLeaderChanged    EventKind = "leader_changed"
	// EventRoundAttested: a member cosigned the checkpoint covering a
	// round's result leaf (Member); EventRoundDisputed: a member's
	// re-derivation differed and it recorded a signed dissent.
	EventRoundAttested EventKind = "round_attested"
	EventRoundDisputed EventKind = "round_disputed"
	// EventRoundDerived: a member's derivation of a sealed round was
	// recorded (the strong form; Detail says whether it matches the
	// earlier ones, a mismatch is also an EventRoundDisputed).
	EventRoundDerived EventKind = "round_derived"
)

// Event is one round or cluster event.
type Event struct {
	Kind EventKind `json:"kind"`
	// Index is the Raft index of the entry that caused it (0 for local
	// events).
	Index  uint64 `json:"index,omitempty"`
	Job    string `json:"job,omitempty"`
	Round  uint64 `json:"round,omitempty"`
	Node   string `json:"node,omitempty"`
	Member string `json:"member,omitempty"`
	// At is the time carried by the entry (the proposing leader's clock),
	// or the local time for local events.
	At     time.Time `json:"at,omitzero"`
	Detail string    `json:"detail,omitempty"`
}

// subscriberBuffer is each subscription's channel capacity. A subscriber
// that falls this far behind loses events (counted in Dropped) rather
// than slowing the state machine.
const subscriberBuffer = 256

// broker fans events out to subscribers without ever blocking the
// publisher.
type broker struct {
	mu      sync.Mutex
	next    int
	subs    map[int]chan Event
	dropped uint64
	closed  bool
}

func newBroker() *broker { return &broker{subs: map[int]chan Event{}} }

func (b *broker) publish(evs []Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range evs {
		for _, ch := range b.subs {
			select {
			case ch <- e:
			default:
				b.dropped++
			}
		}
	}
}

func (b *broker) subscribe() (<-chan Event, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan Event, subscriberBuffer)
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	id := b.next
	b.next++
	b.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if c, ok := b.subs[id]; ok {
				delete(b.subs, id)
				close(c)
			}
		})
	}
}

func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for id, ch := range b.subs {
		delete(b.subs, id)
		close(ch)
	}
}
