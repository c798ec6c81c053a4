using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Sessions;

/// <summary>
/// The per-dot cycle on its own: a simulated gantry on the in-process transport, a scripted head pose
/// on a fake clock (pose ages, hold times and the settle time are the test's to move), no Kestrel, no
/// gRPC. Each test drives <see cref="DotCycle.PlaceAsync"/> and checks its <see cref="DotOutcome"/>
/// against the ledger and the simulator's motion record.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public sealed class DotCycleTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private const string Console = "console-test";

    private readonly FakeTimeProvider _poseClock = new(new DateTimeOffset(2026, 12, 3, 9, 0, 0, TimeSpan.Zero));

    // The operator's beats are timed on a clock of their own that the tests never move: the operator
    // supervises throughout, however far a test moves the pose clock.
    private readonly FakeTimeProvider _presenceClock = new(new DateTimeOffset(2026, 12, 3, 9, 0, 0, TimeSpan.Zero));
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "smp-dotcycle-" + Guid.NewGuid().ToString("N"));
    private readonly List<Action> _onChanged = [];
    private MachineProfile _profile = TestProfiles.Sim();
    private SimulatedGantry _simulator = null!;
    private GantryConnection _gantry = null!;
    private LedgerStore _ledger = null!;
    private SafetySupervisor _safety = null!;
    private OperatorPresence _presence = null!;
    private ConsoleHeartbeats _heartbeat = null!;

    /// <summary>A tracked head whose pose the test sets; every pose is fresh on the fake clock.</summary>
    private sealed class ScriptedHead(RigidTransform gantryFromHead, TimeProvider clock) : IHeadPoseSource
    {
        private double _quality = 1;

        public double Quality { get => Volatile.Read(ref _quality); set => Volatile.Write(ref _quality, value); }

        public string Description => "tracked:test-scripted";
        public bool IsTracking => true;
        public TimeProvider Clock => clock;
        public HeadPoseSample? Latest(TimeSpan lookAhead = default) => new(gantryFromHead, clock.GetTimestamp(), Quality, 0.0);
        public event EventHandler? PoseUpdated { add { } remove { } }
    }

    public async Task InitializeAsync() => await StartMachineAsync(null);

    private async Task StartMachineAsync(string? faults)
    {
        Directory.CreateDirectory(_dataDirectory);
        _simulator = new SimulatedGantry(_profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 200, Faults = faults is null ? null : FaultPlan.Parse(faults) });
        _gantry = new GantryConnection(() => new InProcessGantryTransport(_simulator), "sim", _profile, TimeProvider.System, 200, NullLogger<GantryConnection>.Instance);
        await _gantry.ConnectAsync(CancellationToken.None).WaitAsync(Timeout);
        await _gantry.HomeAsync(CancellationToken.None).WaitAsync(Timeout);
        _ledger = new LedgerStore(Path.Combine(_dataDirectory, "smp.db"), TimeProvider.System);
        _safety = new SafetySupervisor(_gantry, _profile, _ledger, TimeProvider.System, NullLogger<SafetySupervisor>.Instance);
        _presence = new OperatorPresence(_profile, _presenceClock);
        _heartbeat = _presence.OpenStream();
        Assert.True(_heartbeat.Beat(Console, 1, "test operator"));
    }

    public async Task DisposeAsync()
    {
        _heartbeat.Dispose();
        _safety.Dispose();
        await _gantry.DisposeAsync();
        await _simulator.DisposeAsync();
        _ledger.Dispose();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A temp folder left behind is harmless.
        }
    }

    private (DotCycle Cycle, SessionRun Run, List<PlannedDot> Dots) NewRun(IHeadPoseSource head, int dots = 3)
    {
        var plan = DemoPlanGenerator.Generate(dots, seed: 5);
        var planned = PathOrdering.Order(plan.Dots).Select((index, seq) => (Dot: plan.Dots[index], Seq: seq))
            .Select(p => new PlannedDot(p.Seq, p.Dot.Id, p.Dot.XMm, p.Dot.YMm, p.Dot.ZMm, p.Dot.DepthMm, p.Dot.DwellMs, p.Dot.PigmentId)).ToList();
        var record = _ledger.CreateSession("dot cycle test", "{}", _profile.Name, planned);
        var aiming = new Aiming(_profile, head);
        void Changed()
        {
            foreach (var action in _onChanged.ToArray()) action();
        }
        var hold = new MotionHold(record.Id, head.Clock, new HoldTally(0, 0, ""), _ledger, NullLogger.Instance, Changed);
        var run = new SessionRun(record.Id, TimeProvider.System.GetUtcNow(), 0, 0, TimeProvider.System.GetTimestamp(), hold, new TrackingGuard(aiming, _profile, _safety)) { ConsoleId = Console };
        var motion = new MotionLink(_gantry, _safety, TimeProvider.System);
        var cycle = new DotCycle(run, motion, _gantry, new DotProgram(_profile), aiming, _profile, _presence, new PoseUpdates(TimeProvider.System), _ledger, TimeProvider.System, NullLogger.Instance, Changed);
        return (cycle, run, planned);
    }

    private DotLedgerState State(SessionRun run, PlannedDot dot) => _ledger.LoadDots(run.SessionId).Single(d => d.Dot.Seq == dot.Seq).State;

    /// <summary>
    /// Plunges in the simulator's record: a straight-down feed with the needle drive on that is followed
    /// by a dwell of some length where it ended (a travel's descent to hover is followed by the next
    /// move or by a G4 P0, a dwell of no length).
    /// </summary>
    private List<SimMotion> Plunges()
    {
        var record = _simulator.MotionRecord;
        var plunges = new List<SimMotion>();
        for (var i = 0; i + 1 < record.Count; i++)
        {
            var m = record[i];
            if (m.Kind == SimMotionKind.Feed && m.SpindleOn && m.To.Z < m.From.Z - 0.01 && m.From.X == m.To.X && m.From.Y == m.To.Y
                && record[i + 1] is { Kind: SimMotionKind.Dwell, DurationSeconds: > 0 } dwell && dwell.From == m.To)
            {
                plunges.Add(m);
            }
        }
        return plunges;
    }

    [Fact]
    public async Task A_fixed_head_places_each_dot_once_at_its_depth_and_confirms_it_back_at_hover()
    {
        var (cycle, run, dots) = NewRun(new FixedHeadPoseSource(_profile.FixedHead.ToTransform(), _poseClock));
        await cycle.BeginAsync(CancellationToken.None).WaitAsync(Timeout);
        foreach (var dot in dots)
        {
            var outcome = await cycle.PlaceAsync(dot, CancellationToken.None).WaitAsync(Timeout);
            Assert.Equal(DotOutcomeKind.Placed, outcome.Kind);
            Assert.Equal(DotLedgerState.Placed, State(run, dot));
            Assert.Null(cycle.Commanded);
        }
        var plunges = Plunges();
        Assert.Equal(dots.Count, plunges.Count);
        var head = _profile.FixedHead.ToTransform();
        var grid = new StepGrid(_profile.StepsPerMm);
        for (var i = 0; i < dots.Count; i++)
        {
            var skin = head.Apply(new Vec3(dots[i].XMm, dots[i].YMm, dots[i].ZMm));
            var depth = grid.Quantise(skin with { Z = skin.Z - dots[i].DepthMm });
            Assert.True(plunges[i].To.DistanceTo(depth) < 0.002, $"dot {dots[i].DotId} reached {plunges[i].To}, not {depth}");
        }
        Assert.True(run.KinematicSeconds > 0);
    }

    [Fact]
    public async Task A_stop_asked_for_before_the_intent_leaves_the_dot_pending_and_nothing_plunges()
    {
        var (cycle, run, dots) = NewRun(new FixedHeadPoseSource(_profile.FixedHead.ToTransform(), _poseClock));
        await cycle.BeginAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.True(run.Commands.Post(RunCommandKind.Pause, "paused by the test"));
        Assert.False(run.Commands.Post(RunCommandKind.Pause, "a second pause is not news"));

        var outcome = await cycle.PlaceAsync(dots[0], CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(DotOutcomeKind.Stopped, outcome.Kind);
        Assert.Equal(DotLedgerState.Pending, State(run, dots[0]));
        Assert.Empty(Plunges());
        Assert.Equal("paused by the test", run.Commands.Take()!.Reason);
    }

    [Fact]
    public async Task A_poor_pose_holds_with_the_needle_raised_and_the_cycle_goes_on_once_tracking_has_settled()
    {
        _profile = _profile with { Tracking = _profile.Tracking with { SettleMs = 0 } };
        var head = new ScriptedHead(_profile.FixedHead.ToTransform(), _poseClock) { Quality = 0.05 };
        var (cycle, run, dots) = NewRun(head);
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _onChanged.Add(() =>
        {
            if (run.Hold.Holding) holding.TrySetResult();
        });
        await cycle.BeginAsync(CancellationToken.None).WaitAsync(Timeout);
        var startZ = cycle.Position.Z;

        var placing = cycle.PlaceAsync(dots[0], CancellationToken.None);
        await holding.Task.WaitAsync(Timeout);
        Assert.Contains("quality", run.Hold.Current!.Value.Reason, StringComparison.OrdinalIgnoreCase);
        head.Quality = 1;
        var outcome = await placing.WaitAsync(Timeout);

        Assert.Equal(DotOutcomeKind.Placed, outcome.Kind);
        Assert.False(run.Hold.Holding);
        Assert.Equal(1, run.Hold.Tally.Holds);
        // The hold lifted the needle above where it was before travelling on.
        Assert.Contains(_simulator.MotionRecord, m => m.Kind == SimMotionKind.Feed && m.From.Z == startZ && m.To.Z > startZ);
        Assert.Single(Plunges());
    }

    [Fact]
    public async Task A_hold_longer_than_the_profile_allows_pauses_for_the_operator_without_plunging()
    {
        var head = new ScriptedHead(_profile.FixedHead.ToTransform(), _poseClock) { Quality = 0.05 };
        var (cycle, run, dots) = NewRun(head);
        var holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _onChanged.Add(() =>
        {
            if (run.Hold.Holding) holding.TrySetResult();
        });
        await cycle.BeginAsync(CancellationToken.None).WaitAsync(Timeout);

        var placing = cycle.PlaceAsync(dots[0], CancellationToken.None);
        await holding.Task.WaitAsync(Timeout);
        _poseClock.Advance(TimeSpan.FromSeconds(_profile.Tracking.MaxHoldSeconds + 1));
        var outcome = await placing.WaitAsync(Timeout);

        Assert.Equal(DotOutcomeKind.Held, outcome.Kind);
        Assert.False(outcome.WaitsForTracking);
        Assert.Contains("tracking did not settle within", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(DotLedgerState.Pending, State(run, dots[0]));
        Assert.Empty(Plunges());
    }

    [Fact]
    public async Task A_guard_retract_after_the_intent_was_recorded_leaves_that_dot_in_doubt_and_the_next_one_is_placed()
    {
        // Settled at the first good pose, so the carried hold ends without the test moving the clock.
        _profile = _profile with { Tracking = _profile.Tracking with { SettleMs = 0 } };
        var head = new ScriptedHead(_profile.FixedHead.ToTransform(), _poseClock);
        var (cycle, run, dots) = NewRun(head);
        var tripped = 0;
        _onChanged.Add(() =>
        {
            // Right after the intent was recorded, before any plunge line: a jerk as the guard sees it.
            if (cycle.Commanded is not null && Interlocked.Exchange(ref tripped, 1) == 0) Assert.True(run.Guard.TryRetract("test: the head jerked"));
        });
        await cycle.BeginAsync(CancellationToken.None).WaitAsync(Timeout);

        var outcome = await cycle.PlaceAsync(dots[0], CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(DotOutcomeKind.GuardTripped, outcome.Kind);
        Assert.Equal(dots[0], outcome.InDoubt);
        Assert.Equal("test: the head jerked", outcome.Reason);
        Assert.Equal(DotLedgerState.InDoubt, State(run, dots[0]));
        Assert.Equal(1, run.Hold.Tally.Retracts);
        Assert.False(run.Guard.RetractRequested);
        Assert.Null(cycle.Commanded);

        // The firmware was set up again and the hold carried to the next aim: it settles and places.
        var next = await cycle.PlaceAsync(dots[1], CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal(DotOutcomeKind.Placed, next.Kind);
        Assert.Equal(DotLedgerState.Placed, State(run, dots[1]));
        Assert.Equal(1, run.Hold.Tally.Holds); // the retract's hold, carried to the next aim and ended there
        // One completed plunge: the in-doubt dot's plunge never reached the wire.
        Assert.Single(Plunges(), p => p.Completed);
    }
}
