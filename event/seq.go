package event

// SeqTracker follows the per-CPU, per-kind sequence numbers of the records a
// reader returns, so that the gaps a reader sees can be compared with the
// producer's drop counters. It allocates only when a new CPU shows up.
type SeqTracker struct {
	next     [][NumKinds]uint64 // next expected sequence number
	captured [][NumKinds]uint64
	gaps     [][NumKinds]uint64
	disorder [][NumKinds]uint64 // records at or below an already seen number
}

// Observe accounts one record.
func (t *SeqTracker) Observe(rec *Record) {
	cpu := int(rec.CPU)
	if cpu >= len(t.next) {
		t.grow(cpu + 1)
	}
	k := rec.Kind
	if k >= NumKinds {
		k = 0 // counted, under kind 0, so corrupt kinds show up
	}
	t.captured[cpu][k]++
	switch {
	case rec.Seq >= t.next[cpu][k]:
		t.gaps[cpu][k] += rec.Seq - t.next[cpu][k]
		t.next[cpu][k] = rec.Seq + 1
	default:
		t.disorder[cpu][k]++
	}
}

func (t *SeqTracker) grow(n int) {
	for len(t.next) < n {
		t.next = append(t.next, [NumKinds]uint64{})
		t.captured = append(t.captured, [NumKinds]uint64{})
		t.gaps = append(t.gaps, [NumKinds]uint64{})
		t.disorder = append(t.disorder, [NumKinds]uint64{})
	}
}

// CPUs returns one more than the highest CPU seen.
func (t *SeqTracker) CPUs() int { return len(t.next) }

// Captured returns the records seen for cpu and kind.
func (t *SeqTracker) Captured(cpu int, k Kind) uint64 {
	if cpu >= len(t.captured) {
		return 0
	}
	return t.captured[cpu][k]
}

// Gaps returns the sequence numbers never seen for cpu and kind, given the
// producer's attempt count (the next number it would have stamped), so
// that records lost after the last one seen count too.
func (t *SeqTracker) Gaps(cpu int, k Kind, attempts uint64) uint64 {
	if cpu >= len(t.next) {
		return attempts
	}
	g := t.gaps[cpu][k]
	if attempts > t.next[cpu][k] {
		g += attempts - t.next[cpu][k]
	}
	return g
}

// Disorder returns how many records of cpu and kind arrived with a
// sequence number at or below one already seen (duplicates or
// reordering); a correct producer and reader give 0.
func (t *SeqTracker) Disorder(cpu int, k Kind) uint64 {
	if cpu >= len(t.disorder) {
		return 0
	}
	return t.disorder[cpu][k]
}
