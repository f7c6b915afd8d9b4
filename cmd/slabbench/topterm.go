package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/slabbench/slabbench/kleak"
)

// interactiveViewer is top on a terminal: the table redrawn in place
// every interval, with keys to change the sort, pause and quit.
type interactiveViewer struct {
	opts  topOptions
	syms  *kleak.Symbols
	ready func() // called once, from the model, when the view is up
}

func newInteractiveViewer(opts topOptions, syms *kleak.Symbols) *interactiveViewer {
	return &interactiveViewer{opts: opts, syms: syms}
}

// topModel is the bubbletea model: the last frame and how to show it.
type topModel struct {
	v      *interactiveViewer
	frame  *frame
	paused bool
	width  int
	height int
}

type frameMsg frame

// readyMsg arrives once the program has set up the terminal and its input
// reader, which open files of their own: the window begins after them.
type readyMsg struct{}

func (m topModel) Init() tea.Cmd { return func() tea.Msg { return readyMsg{} } }

func (m topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case "s":
			m.v.opts.sort = m.v.opts.sort.next()
		case "p", " ":
			m.paused = !m.paused
		case "g":
			if m.v.opts.stacks != nil {
				m.v.opts.byStack = !m.v.opts.byStack
			}
		}
	case readyMsg:
		m.v.ready()
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case frameMsg:
		if !m.paused {
			f := frame(msg)
			m.frame = &f
		}
	}
	return m, nil
}

func (m topModel) View() string {
	keys := "s: sort by " + string(m.v.opts.sort.next()) + "   p: pause   q: quit"
	if m.v.opts.stacks != nil {
		keys = map[bool]string{false: "g: rows by stack   ", true: "g: rows by call site   "}[m.v.opts.byStack] + keys
	}
	if m.paused {
		keys = "PAUSED (the intervals go on; p: resume)   " + keys
	}
	if m.frame == nil {
		return fmt.Sprintf("slabbench top: capturing on %s, first table in %v\n%s\n", m.v.opts.path, m.v.opts.interval, keys)
	}
	opts := m.v.opts
	text := renderFrame(*m.frame, opts, m.v.syms, m.width)
	// The renderer keeps the bottom of a view taller than the terminal:
	// show fewer call sites instead, so the header and footer stay. A
	// row by stack takes 1 to 1+stackFrames lines, so drop rows until it
	// fits, at least one a round.
	opts.top = len(topSites(tableRows(*m.frame, opts), opts.sort, opts.top))
	for m.height > 0 && opts.top > 1 {
		excess := strings.Count(text, "\n") + 1 - m.height
		if excess <= 0 {
			break
		}
		opts.top = max(1, opts.top-max(1, excess/(1+stackFrames)))
		text = renderFrame(*m.frame, opts, m.v.syms, m.width)
	}
	return text + keys
}

func (v *interactiveViewer) run(ctx context.Context, begin func(), take func() frame) error {
	p := tea.NewProgram(topModel{v: v}, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithOutput(os.Stdout))
	// The frames stop when the view does (q), not only when ctx ends.
	viewCtx, closed := context.WithCancel(ctx)
	began := make(chan struct{})
	var once sync.Once
	v.ready = func() {
		once.Do(func() {
			begin()
			close(began)
		})
	}
	ticking := make(chan struct{})
	go func() {
		defer close(ticking)
		select {
		case <-began:
		case <-viewCtx.Done():
			return
		}
		everyInterval(viewCtx, v.opts.interval, take, func(f frame) error {
			p.Send(frameMsg(f))
			return nil
		})
	}()
	_, err := p.Run()
	closed()
	<-ticking
	v.ready() // the window begins even if the view never came up
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		err = nil // --duration passed, or SIGTERM: a normal end
	}
	return err
}

// final prints the last table, with the exact accounting, on the normal
// screen once the view has closed.
func (v *interactiveViewer) final(f frame) error {
	_, err := fmt.Fprint(os.Stdout, renderFrame(f, v.opts, v.syms, 0))
	return err
}
