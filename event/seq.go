package event

// SeqTracker follows the per-CPU, per-kind sequence numbers of the records a
// reader returns, so that the gaps a reader sees can be compared with the
// producer's drop counters. It allocates only when a new CPU shows up.
type SeqTracker struct {
	cpus []seqCounts
}

// seqCounts is one CPU and kind's accounting, kept together so that a
// record touches one cache line.
type seqCounts struct {
	next     uint64 // next expected sequence number
	captured uint64
	gaps     uint64
	disorder uint64 // records at or below an already seen number
}

// Observe accounts one record.
func (t *SeqTracker) Observe(rec *Record) {
	k := int(rec.Kind)
	if k >= int(NumKinds) {
		k = 0 // counted, under kind 0, so corrupt kinds show up
	}
	i := int(rec.CPU)*int(NumKinds) + k
	if i >= len(t.cpus) {
		t.grow(int(rec.CPU) + 1)
	}
	c := &t.cpus[i]
	c.captured++
	if rec.Seq >= c.next {
		c.gaps += rec.Seq - c.next
		c.next = rec.Seq + 1
	} else {
		c.disorder++
	}
}

func (t *SeqTracker) grow(cpus int) {
	t.cpus = append(t.cpus, make([]seqCounts, cpus*int(NumKinds)-len(t.cpus))...)
}

// CPUs returns one more than the highest CPU seen.
func (t *SeqTracker) CPUs() int { return len(t.cpus) / int(NumKinds) }

func (t *SeqTracker) at(cpu int, k Kind) (seqCounts, bool) {
	i := cpu*int(NumKinds) + int(k)
	if cpu >= t.CPUs() {
		return seqCounts{}, false
	}
	return t.cpus[i], true
}

// Captured returns the records seen for cpu and kind.
func (t *SeqTracker) Captured(cpu int, k Kind) uint64 {
	c, _ := t.at(cpu, k)
	return c.captured
}

// Gaps returns the sequence numbers never seen for cpu and kind, given the
// producer's attempt count (the next number it would have stamped), so
// that records lost after the last one seen count too.
func (t *SeqTracker) Gaps(cpu int, k Kind, attempts uint64) uint64 {
	c, ok := t.at(cpu, k)
	if !ok {
		return attempts
	}
	g := c.gaps
	if attempts > c.next {
		g += attempts - c.next
	}
	return g
}

// Disorder returns how many records of cpu and kind arrived with a
// sequence number at or below one already seen (duplicates or
// reordering); a correct producer and reader give 0.
func (t *SeqTracker) Disorder(cpu int, k Kind) uint64 {
	c, _ := t.at(cpu, k)
	return c.disorder
}
