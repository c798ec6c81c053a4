using System.Globalization;
using System.Text;
using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// A byte-level simulation of a grbl 1.1 board driving the gantry of a <see cref="MachineProfile"/>:
/// receive buffer with silent drops, real-time bytes, a planner of <see cref="MachineProfile.PlannerBlocks"/>
/// blocks executed rest-to-rest with <see cref="Kinematics"/>, feed hold / safety door / soft reset / jog
/// cancel, homing lock, soft limits and check mode. It records what physically happened
/// (<see cref="MotionRecord"/>, <see cref="SpindleLog"/>) so tests can prove it, and can inject faults
/// (<see cref="SimulatedGantryOptions.Faults"/>, logged in <see cref="FaultLog"/>).
/// </summary>
/// <remarks>
/// Time: simulated seconds = TimeProvider time elapsed since <see cref="PowerOn"/> × <see cref="TimeScale"/>.
/// Position and state are computed analytically from the executing block and the current time, so
/// they are exact whenever they are read; a background executor only wakes to emit what is due.
/// One lock guards all state; everything is safe to call from any thread.
/// Faults live apart, in <see cref="FaultInjector"/>: this class calls its hooks where a fault can strike and
/// carries out what they answer, so what it models is the firmware.
/// </remarks>
public sealed partial class SimulatedGantry : IAsyncDisposable
{
    /// <summary>Simulated seconds within which two times count as the same (the fault side compares with it too).</summary>
    internal const double TimeEpsilon = 1e-9;
    /// <summary>grbl's LINE_BUFFER_SIZE: a block may hold at most 79 characters after compaction.</summary>
    private const int LineBufferSize = 80;

    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly SimulatedGantryOptions _options;
    private Kinematics _kinematics; // rebuilt when a $1xx setting is written
    private StepGrid _grid;
    private readonly CancellationTokenSource _stop = new();
    private Task? _protocolTask;
    private Task? _executorTask;
    private Task? _faultTask; // the fault side's own loop (delay-ok), when it has one

    // Power and link.
    private bool _poweredOn;
    private long _powerOnTimestamp;
    private bool _connected = true;
    private bool _disposed;

    // Firmware -> host.
    private readonly Queue<byte> _output = new();
    private TaskCompletionSource _outputSignal = NewSignal();

    // Host -> firmware: serial receive buffer and the protocol loop's line buffer.
    private readonly Queue<byte> _rx = new();
    private readonly StringBuilder _lineCompact = new();
    private readonly StringBuilder _lineRaw = new();
    private bool _lineOverflow;
    private bool _inParenComment;
    private bool _inLineComment;
    private int _droppedBytes;

    // Firmware state.
    private long _epoch; // bumped by every reset: work of an older epoch is abandoned without an answer
    private bool _alarm;
    private bool _awaitingReset; // after a hard or soft limit alarm grbl blocks until the host resets it
    private double _criticalAlarmSim; // when that alarm was printed: a reset within CriticalAlarmResetDeafSeconds after it is discarded

    /// <summary>
    /// After printing a hard or soft limit alarm grbl 1.1 waits about half a second and then discards any reset
    /// already received (seen on the wire with grbl 1.1h's own code): the host must reset again after that.
    /// Simulated seconds.
    /// </summary>
    public const double CriticalAlarmResetDeafSeconds = 0.5;
    private bool _checkMode;
    private bool _homing;
    private bool _homed;
    private TaskCompletionSource _changed = NewSignal(); // pulsed on every state change (protocol loop waits)
    private TaskCompletionSource _observed = NewSignal(); // completed on every change an observer can see (NextChange)
    private TaskCompletionSource _wake = NewSignal();    // pulsed when the executor's next event changed
    private bool _protocolBlocked;
    private readonly List<TaskCompletionSource> _blockedWaiters = [];

    // G-code parser modal state (gc_state in grbl).
    private int _motionMode;
    private bool _incremental;
    private double _feedMmPerMin;
    private int _spindleMode = 5;
    private double _spindleSpeed;
    private Vec3 _parserPosition;

    // Machine.
    private Vec3 _position;        // physical position while no motion segment is active
    // grbl's step counters minus the physical position: what MPos reports and G-code targets mean is
    // physical + this. Zero once homed (the physical frame is the one homing sets up); at power-on and
    // after a hard reset the counters restart at 0 wherever the machine stands.
    private Vec3 _counterOffset;
    private bool _reportInches;
    private readonly SortedDictionary<int, string> _otherSettings = new() { [0] = "10", [1] = "25", [2] = "0", [3] = "0", [4] = "0", [5] = "0", [6] = "0", [11] = "0.010", [12] = "0.002", [21] = "0", [24] = "25.000", [25] = "500.000", [26] = "250", [30] = "1000", [31] = "0", [32] = "0" };
    private Vec3 _plannerPosition; // end of the last queued block, on the step grid
    private readonly LinkedList<Block> _planner = new();
    private Segment? _active;
    private double _probeTriggerSim = double.PositiveInfinity; // when the active probe move's input changes (∞: it does not)
    private Vec3? _probeContact;   // where the probe input changed in this cycle (physical, on the step grid)
    private bool _probeAway;       // G38.4/5: the cycle looks for the input to clear
    private FaultInjector.ProbeInput _probeInput; // what the probe wire does in this cycle (probe faults)
    private bool _spindleOn;
    private HoldKind _hold;
    private HoldPhase _holdPhase;
    private bool _holdAtBlockEnd;  // hold requested while the block was already decelerating to its end
    private bool _flushOnStop;     // jog cancel: drop the rest of the jog once stopped
    private bool _softLimitPending;
    private double _holdStartSim;
    private double _holdStopSim;
    private double _holdV0;
    private double _holdS0;
    private double _restoreEndSim;
    private double _syncedAtSim; // last time a segment ended or a hold was released
    private double _loopTimeSim; // when the protocol loop finished its last line (see ExecuteLineAsync)
    private readonly Queue<(double Sim, int Line)> _newlineArrivals = new(); // arrival time and host line of each '\n' in the receive buffer

    // Fault injection: every fault's decisions and state live in the FaultInjector, called through its hooks.
    private readonly FaultInjector _faults;

    // Records.
    private readonly List<SimMotion> _motions = [];
    private readonly List<SimRealtimeByte> _realtimeLog = [];
    private readonly List<(double SimSeconds, bool On)> _spindleLog = [];

    /// <summary>Creates a powered-off simulator; call <see cref="PowerOn"/> (or open an <see cref="InProcessGantryTransport"/>).</summary>
    public SimulatedGantry(MachineProfile profile, TimeProvider timeProvider, SimulatedGantryOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _options = options ?? new SimulatedGantryOptions();
        if (!(_options.TimeScale > 0) || !double.IsFinite(_options.TimeScale))
        {
            throw new ArgumentOutOfRangeException(nameof(options), "TimeScale must be a finite number > 0");
        }
        Profile = profile;
        _time = timeProvider;
        _kinematics = new Kinematics(profile);
        _grid = new StepGrid(profile.StepsPerMm);
        _position = _parserPosition = _plannerPosition = profile.HomePosition;
        _counterOffset = Vec3.Zero - profile.HomePosition;
        _faults = new FaultInjector(_options.Faults ?? new FaultPlan(), timeProvider, _options.TimeScale, _gate, WriteLateAnswer);
    }

    /// <summary>Every fault injected so far (see <see cref="SimulatedGantryOptions.Faults"/>), in order (snapshot copy).</summary>
    public IReadOnlyList<FaultEvent> FaultLog { get { lock (_gate) { Advance(NowSim()); return _faults.Log.ToArray(); } } }

    /// <summary>The receive buffer size in effect: the profile's, or the <c>rx=N</c> fault's.</summary>
    public int RxBufferBytes => _faults.ReceiveBufferBytes(Profile.RxBufferBytes);

    /// <summary>The profile whose machine is simulated, with the settings written to it since (<c>$N=value</c>).</summary>
    public MachineProfile Profile { get; private set; }

    /// <summary>Simulated seconds per wall second.</summary>
    public double TimeScale => _options.TimeScale;

    /// <summary>The probe wire is cut now (a cable caught by the chair mid-session): from the next probe cycle on, its input never triggers, as <c>probe-cut</c> does.</summary>
    public void CutProbeWire()
    {
        lock (_gate) _faults.CutProbeWire();
    }

    /// <summary>The skin its probe input touches (<see cref="SimulatedGantryOptions.Skin"/>), or null.</summary>
    public ISimulatedSkin? Skin => _options.Skin;

    /// <summary>Raised synchronously inside <see cref="Receive"/> for every real-time byte, before it acts.</summary>
    public event EventHandler<RealtimeByteEventArgs>? RealtimeByteReceived;

    /// <summary>TimeProvider timestamp of <see cref="PowerOn"/> (simulated second 0); 0 before.</summary>
    public long PowerOnTimestamp { get { lock (_gate) return _powerOnTimestamp; } }

    /// <summary>The TimeProvider timestamp at simulated second <paramref name="simSeconds"/>.</summary>
    public long TimestampAt(double simSeconds) => PowerOnTimestamp + (long)(simSeconds / _options.TimeScale * _time.TimestampFrequency);

    /// <summary>True once <see cref="PowerOn"/> has been called.</summary>
    public bool IsPoweredOn { get { lock (_gate) return _poweredOn; } }

    /// <summary>Every executed or interrupted block and dwell, in execution order (snapshot copy).</summary>
    public IReadOnlyList<SimMotion> MotionRecord { get { lock (_gate) { Advance(NowSim()); return _motions.ToArray(); } } }

    /// <summary>Every real-time byte received (snapshot copy).</summary>
    public IReadOnlyList<SimRealtimeByte> RealtimeLog { get { lock (_gate) return _realtimeLog.ToArray(); } }

    /// <summary>Spindle (needle drive) switching, simulated seconds (snapshot copy).</summary>
    public IReadOnlyList<(double SimSeconds, bool On)> SpindleLog { get { lock (_gate) return _spindleLog.ToArray(); } }

    /// <summary>
    /// Physical position now (interpolated mid-move), mm, in the frame a homing cycle sets up (where grbl's
    /// rules put home for the profile's settings). Equal to the reported machine position once homed;
    /// before that the firmware counts from wherever it powered on.
    /// </summary>
    public Vec3 Position { get { lock (_gate) { var now = NowSim(); Advance(now); return CurrentPosition(now); } } }

    /// <summary>State as the status report shows it (Idle, Run, Hold:0, Hold:1, Jog, Alarm, Door:0/2/3, Check, Home).</summary>
    public string State { get { lock (_gate) { Advance(NowSim()); return StateText(); } } }

    /// <summary>True when the firmware knows its position from a completed $H (lost by resets while moving and by hard resets).</summary>
    public bool Homed { get { lock (_gate) return _homed; } }

    /// <summary>Physical spindle (needle drive) state now.</summary>
    public bool SpindleOn { get { lock (_gate) { Advance(NowSim()); return _spindleOn; } } }

    /// <summary>Simulated seconds since power-on.</summary>
    public double SimulatedSeconds { get { lock (_gate) return NowSim(); } }

    /// <summary>Bytes dropped because the receive buffer was full.</summary>
    public int DroppedBytes { get { lock (_gate) return _droppedBytes; } }

    /// <summary>Test hook: firmware output written and not yet read (answers are written synchronously, so 0 right after a write proves there was no answer).</summary>
    internal int OutputBytesPending { get { lock (_gate) return _output.Count; } }

    /// <summary>
    /// Completes at the next change an observer can see: a motion started, ended or recorded, a hold, a real-time
    /// byte received, a line taken. Take it before reading the state, then await it, to wait for a condition
    /// without polling.
    /// </summary>
    public Task NextChange { get { lock (_gate) return _observed.Task; } }

    /// <summary>The line of the motion executing now (e.g. "G38.2Z-3.5F60"), or null when nothing moves; a motion's start is a <see cref="NextChange"/>.</summary>
    public string? ExecutingLine { get { lock (_gate) { Advance(NowSim()); return _active?.Block.Line; } } }

    /// <summary>Motion blocks in the planner, including the one executing.</summary>
    public int PlannerBlocksQueued { get { lock (_gate) { Advance(NowSim()); return MotionBlockCount(); } } }

    /// <summary>
    /// Powers the board on: banner <c>"\r\nGrbl 1.1h ['$' for help]\r\n"</c>, and with homing enabled the
    /// unlock message and state Alarm. The physical position starts at <see cref="MachineProfile.HomePosition"/>
    /// (where the last homing left it) and the step counters at 0, as on a real board.
    /// Throws <see cref="InvalidOperationException"/> when already on.
    /// </summary>
    public void PowerOn()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_poweredOn) throw new InvalidOperationException("the simulated gantry is already powered on");
            _poweredOn = true;
            _connected = true;
            _powerOnTimestamp = _time.GetTimestamp();
            _position = Profile.HomePosition;
            _counterOffset = Vec3.Zero - _position;
            _alarm = Profile.HomingEnabled;
            _homed = false;
            ResetFirmware(0, NowSim());
        }
        _protocolTask = Task.Run(ProtocolLoopAsync);
        _executorTask = Task.Run(ExecutorLoopAsync);
        _faultTask = _faults.StartLateAnswers(_stop.Token);
    }

    /// <summary>
    /// A hard reset (DTR on port open): motion stops where it is, everything is flushed, spindle off,
    /// homing forgotten (Alarm when homing is enabled), unread output discarded, banner again; the
    /// physical position is unchanged. Also re-plugs a <see cref="Disconnect"/>ed cable.
    /// </summary>
    public void HardReset()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_poweredOn) throw new InvalidOperationException("the simulated gantry is not powered on");
            var now = NowSim();
            Advance(now);
            StopActiveNow(now);
            _output.Clear();
            _connected = true;
            _faults.BoardRestarted(); // a hardware reset restarts a hung main loop
            _alarm = Profile.HomingEnabled;
            _homed = false;
            _counterOffset = Vec3.Zero - _position; // the board restarts: its counters begin at 0 here
            ResetFirmware(0, now);
        }
    }

    /// <summary>
    /// Models an unplugged cable: <see cref="ReadOutputAsync"/> returns 0 and <see cref="Receive"/> throws
    /// <see cref="IOException"/>. The board keeps executing what it has, as grbl does.
    /// </summary>
    public void Disconnect()
    {
        lock (_gate) DisconnectCore();
    }

    private void DisconnectCore()
    {
        _connected = false;
        _output.Clear();
        _outputSignal.TrySetResult();
    }

    /// <summary>
    /// Bytes from the host. Real-time bytes act at once wherever they appear; other bytes go to the
    /// receive buffer (<see cref="MachineProfile.RxBufferBytes"/>) and are dropped silently when it is full.
    /// Bytes &gt;= 0x80 that are not commands are ignored. Thread-safe.
    /// </summary>
    public void Receive(ReadOnlySpan<byte> data)
    {
        FaultInjector.Ingress[] bytes;
        lock (_gate)
        {
            ThrowIfUnplugged();
            if (!_poweredOn) return;
            // The wire: injected faults drop or change bytes before the firmware sees them.
            bytes = [.. _faults.HostBytesArriving(data, IsRealtime, NowSim())];
        }
        var i = 0;
        while (i < bytes.Length)
        {
            lock (_gate)
            {
                ThrowIfUnplugged();
                var added = false;
                var overflowed = 0;
                var capacity = RxBufferBytes;
                for (; i < bytes.Length && !IsRealtime(bytes[i].Value); i++)
                {
                    var b = bytes[i].Value;
                    if (b >= 0x80 || !_poweredOn) continue;
                    if (_rx.Count < capacity)
                    {
                        _rx.Enqueue(b);
                        if (b == (byte)'\n') _newlineArrivals.Enqueue((NowSim(), bytes[i].Line));
                        added = true;
                    }
                    else
                    {
                        _droppedBytes++;
                        overflowed++;
                    }
                }
                if (overflowed > 0) _faults.ReceiveBufferOverflowed(capacity, overflowed, bytes[i - 1].Line, NowSim());
                if (added) Pulse();
            }
            if (i >= bytes.Length) break;

            var command = bytes[i++].Value;
            var timestamp = _time.GetTimestamp();
            lock (_gate)
            {
                ThrowIfUnplugged();
                if (!_poweredOn) continue;
                _realtimeLog.Add(new SimRealtimeByte(command, timestamp, NowSim()));
                NotifyObservers();
            }
            RealtimeByteReceived?.Invoke(this, new RealtimeByteEventArgs(command, timestamp));
            lock (_gate) ActOnRealtime(command);
        }
    }

    /// <summary>Firmware output; waits for at least one byte. Returns 0 after <see cref="Disconnect"/> or disposal.</summary>
    public async ValueTask<int> ReadOutputAsync(Memory<byte> buffer, CancellationToken ct)
    {
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                if (!_connected || _disposed) return 0;
                if (_output.Count > 0 && buffer.Length > 0)
                {
                    var n = Math.Min(buffer.Length, _output.Count);
                    var span = buffer.Span;
                    for (var k = 0; k < n; k++) span[k] = _output.Dequeue();
                    return n;
                }
                if (_outputSignal.Task.IsCompleted) _outputSignal = NewSignal();
                wait = _outputSignal.Task;
            }
            await wait.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Stops the background loops; readers get 0.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _outputSignal.TrySetResult();
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var task in new[] { _protocolTask, _executorTask, _faultTask })
        {
            if (task is null) continue;
            try
            {
                await task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // expected on shutdown
            }
        }
        _stop.Dispose();
    }

    // ---------------------------------------------------------------- real-time commands

    private static bool IsRealtime(byte b) => b is (byte)'?' or (byte)'!' or (byte)'~' or 0x18 or 0x84 or 0x85;

    private void ActOnRealtime(byte command)
    {
        if (!_poweredOn || _disposed) return;
        var now = NowSim();
        Advance(now);
        if (_faults.RealtimeIgnored(command)) return; // the main loop hangs (stall-at-dot): nothing acts
        switch (command)
        {
            case (byte)'?':
                // Locked after a hard or soft limit: grbl answers nothing until it is reset, not even '?'.
                if (_awaitingReset) break;
                Emit(_faults.StatusReportOnTheWire(StatusReport(now), now));
                break;
            case (byte)'!':
                FeedHold(now);
                break;
            case (byte)'~':
                CycleStart(now);
                break;
            case 0x18:
                if (_awaitingReset && now < _criticalAlarmSim + CriticalAlarmResetDeafSeconds) break; // discarded, as grbl does
                SoftReset(now);
                break;
            case 0x84:
                SafetyDoor(now);
                break;
            case 0x85:
                if (_hold == HoldKind.None && IsJogging())
                {
                    _hold = HoldKind.JogCancel;
                    _flushOnStop = true;
                    InitiateHold(now);
                }
                break;
        }
    }

    private void FeedHold(double now)
    {
        if (_alarm || _checkMode || _homing || _hold != HoldKind.None) return;
        if (IsJogging())
        {
            // grbl: any hold during a jog cancels the jog.
            _hold = HoldKind.JogCancel;
            _flushOnStop = true;
        }
        else
        {
            _hold = HoldKind.Feed;
        }
        InitiateHold(now);
    }

    private void CycleStart(double now)
    {
        if (_softLimitPending || _holdPhase != HoldPhase.Complete) return;
        if (_hold == HoldKind.Feed)
        {
            EndHold();
            _syncedAtSim = now;
            StartNext(now);
        }
        else if (_hold == HoldKind.Door)
        {
            if (_spindleMode != 5 && !_spindleOn)
            {
                // grbl restores the programmed spindle, waits for it to spin up, then resumes motion.
                SetSpindle(true, now);
                _holdPhase = HoldPhase.Restoring;
                _restoreEndSim = now + Math.Max(0, _options.DoorResumeSpindleDelaySeconds);
                Wake();
                Advance(now);
            }
            else
            {
                EndHold();
                _syncedAtSim = now;
                StartNext(now);
            }
        }
        Pulse();
    }

    private void SafetyDoor(double now)
    {
        if (_alarm || _checkMode) return;
        if (_homing)
        {
            // grbl: door opened during homing fails the cycle (ALARM:7) and resets.
            SetSpindle(false, now);
            StopActiveNow(now);
            _alarm = true;
            _homed = false;
            ResetFirmware(7, now);
            return;
        }
        Emit("[MSG:Check Door]\r\n");
        SetSpindle(false, now); // at once, not after the deceleration: the needle drive must stop now
        switch (_hold)
        {
            case HoldKind.Door:
                if (_holdPhase == HoldPhase.Restoring) _holdPhase = HoldPhase.Complete;
                break;
            case HoldKind.Feed or HoldKind.JogCancel or HoldKind.ProbeCancel:
                _hold = HoldKind.Door; // keep decelerating (or stopped); a jog or a probe move is still flushed on stop
                break;
            default:
                if (IsJogging()) _flushOnStop = true;
                _hold = HoldKind.Door;
                InitiateHold(now);
                break;
        }
        Pulse();
    }

    private void SoftReset(double now)
    {
        var alarmCode = 0;
        if (_active is { } segment)
        {
            if (segment.Block.Kind != SimMotionKind.Dwell)
            {
                // Motion in progress (running, jogging, homing, or a hold still decelerating): steps are
                // killed at once, so the firmware can no longer vouch for its position.
                alarmCode = segment.Block.Kind == SimMotionKind.Homing ? 6 : 3;
            }
            StopActiveNow(now);
        }
        _probeTriggerSim = double.PositiveInfinity;
        _probeContact = null;
        if (alarmCode != 0)
        {
            _alarm = true;
            _homed = false;
        }
        ResetFirmware(alarmCode, now);
    }

    /// <summary>Stops the active segment where it is now (no deceleration) and records it as interrupted.</summary>
    private void StopActiveNow(double now)
    {
        if (_active is not { } segment) return;
        if (segment.Block.Kind == SimMotionKind.Dwell)
        {
            Record(segment, segment.From, now, completed: false);
        }
        else
        {
            var stop = _grid.Quantise(CurrentPosition(now));
            Record(segment, stop, now, completed: false);
            _position = stop;
        }
        _active = null;
        _probeTriggerSim = double.PositiveInfinity;
    }

    /// <summary>
    /// grbl's reset path: flush buffers and planner, spindle off, parser state to defaults, then
    /// ALARM:n (when given), the banner, and the unlock message when in Alarm.
    /// </summary>
    private void ResetFirmware(int alarmCode, double now)
    {
        _planner.Clear();
        _active = null;
        _hold = HoldKind.None;
        _holdPhase = HoldPhase.None;
        _holdAtBlockEnd = false;
        _flushOnStop = false;
        _softLimitPending = false;
        _awaitingReset = false;
        _checkMode = false;
        _homing = false;
        SetSpindle(false, now);
        _motionMode = 0;
        _incremental = false;
        _feedMmPerMin = 0;
        _spindleMode = 5;
        _spindleSpeed = 0;
        _parserPosition = _plannerPosition = _position;
        _rx.Clear();
        _newlineArrivals.Clear();
        ClearLineBuffer();
        _syncedAtSim = _loopTimeSim = now;
        _epoch++;
        if (alarmCode != 0) Emit(string.Create(CultureInfo.InvariantCulture, $"ALARM:{alarmCode}\r\n"));
        Emit($"\r\nGrbl {_options.Version} ['$' for help]\r\n");
        if (_alarm) Emit("[MSG:'$H'|'$X' to unlock]\r\n");
        Pulse();
        Wake();
    }

    // ---------------------------------------------------------------- motion execution

    private void InitiateHold(double now)
    {
        _holdAtBlockEnd = false;
        // A feed hold or door during a probe move stops watching the input until the move starts again.
        if (_hold != HoldKind.ProbeCancel) _probeTriggerSim = double.PositiveInfinity;
        if (_active is not { } segment)
        {
            HoldStopped();
            return;
        }
        if (segment.Block.Kind == SimMotionKind.Dwell)
        {
            // A dwell holds at once; the rest of it runs after resume.
            var elapsed = Math.Max(0, now - segment.StartSim);
            Record(segment, segment.From, now, completed: false);
            segment.Block.DwellSeconds = Math.Max(0, segment.Block.DwellSeconds - elapsed);
            _active = null;
            HoldStopped();
            return;
        }
        var t = now - segment.StartSim;
        var v0 = segment.Move.SpeedAt(t);
        var s0 = segment.Move.DistanceAt(t);
        if (v0 <= 0 && s0 <= 0)
        {
            _active = null; // not started yet: it simply starts after resume
            HoldStopped();
            return;
        }
        var a = segment.Move.AccelMmPerS2;
        var stopDistance = v0 * v0 / (2 * a);
        if (s0 + stopDistance >= segment.Move.Length - 1e-9)
        {
            _holdAtBlockEnd = true; // already on its final ramp: it stops at its own end
        }
        else
        {
            _holdStartSim = now;
            _holdStopSim = now + (v0 / a);
            _holdV0 = v0;
            _holdS0 = s0;
        }
        _holdPhase = HoldPhase.Decelerating;
        Wake();
        Pulse();
    }

    private void HoldStopped()
    {
        _holdPhase = HoldPhase.Complete;
        _holdAtBlockEnd = false;
        if (_flushOnStop)
        {
            _flushOnStop = false;
            _planner.Clear();
            _parserPosition = _plannerPosition = _position;
        }
        if (_hold is HoldKind.JogCancel or HoldKind.ProbeCancel) EndHold();
        Pulse();
    }

    private void EndHold()
    {
        _hold = HoldKind.None;
        _holdPhase = HoldPhase.None;
        _holdAtBlockEnd = false;
    }

    /// <summary>Starts the front block at <paramref name="startSim"/> when nothing runs and no hold is active.</summary>
    private void StartNext(double startSim)
    {
        if (_active is not null || _hold != HoldKind.None || _planner.First is not { } node) return;
        var block = node.Value;
        if (block.Kind == SimMotionKind.Dwell)
        {
            _active = new Segment(block, _position, startSim, default, block.DwellSeconds, _spindleOn);
        }
        else
        {
            var move = _kinematics.Move(_position, block.Target, block.FeedMmPerMin);
            _active = new Segment(block, _position, startSim, move, move.DurationSeconds, _spindleOn);
            if (block.Plunge > 0) _faults.PlungeStarting(block.Plunge, startSim, move.DurationSeconds);
            _probeTriggerSim = block.Probing ? ProbeTriggerSim(_active) : double.PositiveInfinity;
        }
        Wake();
    }

    /// <summary>
    /// An alarm-at-dot or reset-at-dot strikes the moving plunge at <paramref name="atSim"/>: it stops there at once,
    /// and the firmware does what the fault side answers.
    /// </summary>
    private void StrikePlunge(Segment segment, double atSim)
    {
        var from = segment.From;
        StopActiveNow(atSim);
        var strike = _faults.PlungeStruck(segment.Block.Plunge, segment.Block.HostLine, segment.Block.Line, from.Z, _position.Z, atSim);
        if (strike == FaultInjector.PlungeStrike.HardLimit)
        {
            // Hard limit: steps and needle drive killed at once, position lost, and (a critical event in
            // grbl) everything refused until the host resets; the line being executed gets no answer.
            _planner.Clear();
            EndHold();
            _flushOnStop = false;
            _softLimitPending = false;
            SetSpindle(false, atSim);
            _parserPosition = _plannerPosition = _position;
            _alarm = true;
            _homed = false;
            _awaitingReset = true;
            _criticalAlarmSim = atSim;
            _syncedAtSim = atSim;
            _epoch++;
            Emit("ALARM:1\r\n[MSG:Reset to continue]\r\n");
            Pulse();
            Wake();
        }
        else
        {
            // Brown-out: the board restarts as on power-up (no ALARM line, homing lost, homing lock).
            _alarm = Profile.HomingEnabled;
            _homed = false;
            _counterOffset = Vec3.Zero - _position; // the board restarts: its counters begin at 0 here
            ResetFirmware(0, atSim);
        }
    }

    /// <summary>A plunge reached its depth: stall-at-dot and disconnect-at-dot strike here.</summary>
    private void PlungeReachedDepth(Block block, double atSim)
    {
        var strike = _faults.PlungeReachedDepth(block.Plunge, block.HostLine, atSim);
        if (strike.MainLoopHangs) Wake(); // the executor wakes when the hang ends
        if (strike.PullsCable) DisconnectCore();
    }

    /// <summary>A main loop hung by stall-at-dot runs again: it writes what it held, then the status report asked for meanwhile.</summary>
    private void ResumeMainLoop(FaultInjector.MainLoopResume resume, double now)
    {
        Emit(resume.HeldOutput);
        if (resume.StatusAsked) Emit(_faults.StatusReportOnTheWire(StatusReport(now), now));
        Pulse();
    }

    /// <summary>Brings the machine up to <paramref name="now"/>: completes segments and holds that are due, chaining blocks back to back.</summary>
    private void Advance(double now)
    {
        AdvanceMotion(now);
        if (_faults.MainLoopResumes(now) is { } resume) ResumeMainLoop(resume, now);
    }

    private void AdvanceMotion(double now)
    {
        if (!_poweredOn) return;
        while (true)
        {
            if (_active is { } segment)
            {
                if (_holdPhase == HoldPhase.None && _faults.PlungeStrikeSim(segment.Block.Plunge) is var strikeSim && now + TimeEpsilon >= strikeSim)
                {
                    StrikePlunge(segment, strikeSim);
                    continue;
                }
                if (_holdPhase == HoldPhase.None && now + TimeEpsilon >= _probeTriggerSim)
                {
                    // The probe input changed: grbl latches the position of that step and cancels the motion
                    // (it decelerates to a stop, so the needle goes on a little past the contact).
                    var at = _probeTriggerSim;
                    _probeTriggerSim = double.PositiveInfinity;
                    _probeContact = _grid.Quantise(segment.Move.PositionAt(at - segment.StartSim));
                    _hold = HoldKind.ProbeCancel;
                    _flushOnStop = true;
                    InitiateHold(at);
                    continue;
                }
                if (_holdPhase == HoldPhase.Decelerating && !_holdAtBlockEnd)
                {
                    if (now + TimeEpsilon < _holdStopSim) return;
                    var stop = _grid.Quantise(DecelPosition(segment, _holdStopSim));
                    Record(segment, stop, _holdStopSim, completed: false);
                    _position = stop;
                    _active = null;
                    HoldStopped();
                    continue;
                }
                var end = segment.StartSim + segment.Duration;
                if (now + TimeEpsilon < end) return;
                var target = segment.Block.Kind == SimMotionKind.Dwell ? segment.From : segment.Block.Target;
                Record(segment, target, end, completed: true);
                _position = target;
                _active = null;
                _probeTriggerSim = double.PositiveInfinity;
                _planner.RemoveFirst();
                _syncedAtSim = end;
                if (segment.Block.Plunge > 0) PlungeReachedDepth(segment.Block, end);
                if (_holdPhase == HoldPhase.Decelerating)
                {
                    HoldStopped();
                    continue;
                }
                Pulse();
                StartNext(end);
                continue;
            }
            if (_hold == HoldKind.Door && _holdPhase == HoldPhase.Restoring)
            {
                if (now + TimeEpsilon < _restoreEndSim) return;
                EndHold();
                _syncedAtSim = _restoreEndSim;
                Pulse();
                StartNext(_restoreEndSim);
                continue;
            }
            return;
        }
    }

    private double? NextEventSim()
    {
        var next = NextMotionEventSim();
        if (_active is { } segment && _holdPhase == HoldPhase.None)
        {
            next = Earliest(next, _faults.PlungeStrikeSim(segment.Block.Plunge));
            next = Earliest(next, _probeTriggerSim);
        }
        return Earliest(next, _faults.MainLoopHungUntilSim);
    }

    /// <summary>The earlier of two event times; an infinite <paramref name="sim"/> is no event.</summary>
    private static double? Earliest(double? next, double sim) => double.IsFinite(sim) ? Math.Min(next ?? double.PositiveInfinity, sim) : next;

    private double? NextMotionEventSim()
    {
        if (_active is { } segment)
        {
            return _holdPhase == HoldPhase.Decelerating && !_holdAtBlockEnd ? _holdStopSim : segment.StartSim + segment.Duration;
        }
        return _hold == HoldKind.Door && _holdPhase == HoldPhase.Restoring ? _restoreEndSim : null;
    }

    private Vec3 CurrentPosition(double now)
    {
        if (_active is not { } segment || segment.Block.Kind == SimMotionKind.Dwell) return _position;
        if (_holdPhase == HoldPhase.Decelerating && !_holdAtBlockEnd) return DecelPosition(segment, now);
        return segment.Move.PositionAt(now - segment.StartSim);
    }

    private double CurrentSpeed(double now)
    {
        if (_active is not { } segment || segment.Block.Kind == SimMotionKind.Dwell) return 0;
        if (_holdPhase == HoldPhase.Decelerating && !_holdAtBlockEnd)
        {
            var tau = Math.Clamp(now - _holdStartSim, 0, _holdStopSim - _holdStartSim);
            return Math.Max(0, _holdV0 - (segment.Move.AccelMmPerS2 * tau));
        }
        return segment.Move.SpeedAt(now - segment.StartSim);
    }

    private Vec3 DecelPosition(Segment segment, double t)
    {
        var a = segment.Move.AccelMmPerS2;
        var tau = Math.Clamp(t - _holdStartSim, 0, _holdStopSim - _holdStartSim);
        var s = _holdS0 + (_holdV0 * tau) - (0.5 * a * tau * tau);
        var length = segment.Move.Length;
        return length <= 0 ? segment.From : segment.From + ((segment.Block.Target - segment.From) * (s / length));
    }

    private void Record(Segment segment, Vec3 to, double endSim, bool completed)
    {
        if (!completed && endSim <= segment.StartSim + TimeEpsilon && to == segment.From) return; // never moved
        _motions.Add(new SimMotion(segment.Block.Kind, segment.From, to, segment.StartSim, endSim, segment.SpindleOn, completed, segment.Block.Line));
        if (segment.SpindleOn && _options.Skin is SimulatedScalp scalp) scalp.NeedleStopped(segment.From, to, endSim);
        NotifyObservers();
    }

    private void SetSpindle(bool on, double now)
    {
        if (_spindleOn == on) return;
        _spindleOn = on;
        _spindleLog.Add((now, on));
    }

    private bool IsJogging() =>
        (_active?.Block.Kind == SimMotionKind.Jog) || (_planner.First?.Value.Kind == SimMotionKind.Jog);

    private int MotionBlockCount()
    {
        var n = 0;
        foreach (var block in _planner)
        {
            if (block.Kind != SimMotionKind.Dwell) n++;
        }
        return n;
    }

    // ---------------------------------------------------------------- executor

    private async Task ExecutorLoopAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            Task wake;
            TimeSpan delay;
            long computedAt;
            lock (_gate)
            {
                if (_wake.Task.IsCompleted) _wake = NewSignal();
                wake = _wake.Task;
                computedAt = _time.GetTimestamp(); // before NowSim: a later move of the clock ends the wait at once
                var now = NowSim();
                Advance(now);
                delay = NextEventSim() is { } next ? SimToWall(next - now) : Timeout.InfiniteTimeSpan;
            }
            await MovableClockWait.WaitForSignalOrDelayAsync(_time, computedAt, delay, wake, token).ConfigureAwait(false);
        }
    }

    /// <summary>An answer delay-ok held back is due (called by the fault side under the lock): written unless a reset came since it was given.</summary>
    private void WriteLateAnswer(long epoch, string text)
    {
        if (epoch == _epoch) Emit(text);
    }

    private TimeSpan SimToWall(double simSeconds)
    {
        if (simSeconds <= 0) return TimeSpan.Zero;
        // Round up so that after the wait the simulated clock has reached the event.
        var ticks = Math.Ceiling(simSeconds / _options.TimeScale * TimeSpan.TicksPerSecond);
        return TimeSpan.FromTicks((long)Math.Min(ticks, TimeSpan.FromDays(1).Ticks));
    }

    private double NowSim() => _poweredOn ? _time.GetElapsedTime(_powerOnTimestamp).TotalSeconds * _options.TimeScale : 0;

    private void Wake() => _wake.TrySetResult();

    private void Pulse()
    {
        _protocolBlocked = false;
        _changed.TrySetResult();
        _changed = NewSignal();
        NotifyObservers();
    }

    private void NotifyObservers()
    {
        _observed.TrySetResult();
        _observed = NewSignal();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    // ---------------------------------------------------------------- output

    private void Emit(string text)
    {
        if (!_connected || _disposed) return;
        if (_faults.OutputHeld(text)) return; // the main loop hangs (stall-at-dot): written when it runs again
        foreach (var c in text) _output.Enqueue((byte)c);
        _outputSignal.TrySetResult();
    }

    private void ThrowIfUnplugged()
    {
        if (_disposed) throw new IOException("simulated gantry: disposed");
        if (!_connected) throw new IOException("simulated gantry: cable unplugged");
    }

    private string StateText()
    {
        if (_alarm) return "Alarm";
        if (_homing) return "Home";
        switch (_hold)
        {
            case HoldKind.Door:
                return _holdPhase switch { HoldPhase.Decelerating => "Door:2", HoldPhase.Restoring => "Door:3", _ => "Door:0" };
            case HoldKind.Feed:
                return _holdPhase == HoldPhase.Decelerating ? "Hold:1" : "Hold:0";
            case HoldKind.JogCancel:
                return "Jog";
        }
        if (_checkMode) return "Check";
        if (IsJogging()) return "Jog";
        return MotionBlockCount() > 0 ? "Run" : "Idle";
    }

    /// <summary>The probe input at physical point <paramref name="p"/> and time <paramref name="simSeconds"/>: the skin touched, unless a probe fault says otherwise.</summary>
    private bool ProbeTriggered(Vec3 p, double simSeconds) => _probeInput switch
    {
        FaultInjector.ProbeInput.Stuck => true,
        FaultInjector.ProbeInput.Cut => false,
        _ => _options.Skin?.SkinZMm(p.X, p.Y, simSeconds) is { } skinZ && p.Z <= skinZ,
    };

    /// <summary>Probe input sampling step, simulated seconds (a stepper ISR samples far faster; the contact is then bisected).</summary>
    private const double ProbeScanSeconds = 0.0005;

    /// <summary>
    /// When the input watched by the probe move <paramref name="segment"/> changes (G38.2/3: becomes triggered;
    /// G38.4/5: clears), or +∞ when it does not before the move ends. The skin may move, so the search is in time:
    /// sampled, then bisected to a microsecond.
    /// </summary>
    private double ProbeTriggerSim(Segment segment)
    {
        bool Changed(double t) => ProbeTriggered(segment.Move.PositionAt(t - segment.StartSim), t) != _probeAway;
        var end = segment.StartSim + segment.Duration;
        var before = segment.StartSim;
        for (var t = segment.StartSim; ; t = Math.Min(end, t + ProbeScanSeconds))
        {
            if (Changed(t))
            {
                var after = t;
                while (after - before > 1e-6)
                {
                    var mid = 0.5 * (before + after);
                    if (Changed(mid)) after = mid; else before = mid;
                }
                return after;
            }
            before = t;
            if (t >= end) return double.PositiveInfinity;
        }
    }

    /// <summary>The motion-mode word as $G reports it.</summary>
    private static string MotionModeWord(int mode) => mode >= 380 ? string.Create(CultureInfo.InvariantCulture, $"G38.{mode - 380}") : string.Create(CultureInfo.InvariantCulture, $"G{mode}");

    private string StatusReport(double now)
    {
        var p = CurrentPosition(now) + _counterOffset;
        var blocksFree = Math.Max(0, Profile.PlannerBlocks - MotionBlockCount());
        var rxFree = RxBufferBytes - _rx.Count;
        var feed = CurrentSpeed(now) * 60;
        var speed = _spindleOn ? _spindleSpeed : 0;
        return string.Create(CultureInfo.InvariantCulture,
            $"<{StateText()}|MPos:{Mm(p.X)},{Mm(p.Y)},{Mm(p.Z)}|Bf:{blocksFree},{rxFree}|FS:{feed:0},{speed:0}>\r\n");
    }

    private static string Mm(double v) => (v == 0 ? 0 : v).ToString("0.000", CultureInfo.InvariantCulture);

    /// <summary>ProbeCancel: grbl's motion cancel when the probe input changes (decelerate, drop the rest, no hold state).</summary>
    private enum HoldKind { None, Feed, Door, JogCancel, ProbeCancel }

    private enum HoldPhase { None, Decelerating, Complete, Restoring }

    /// <summary>A planner block. Dwell blocks only ever run alone (G4 synchronises first).</summary>
    private sealed class Block(SimMotionKind kind, Vec3 target, double? feedMmPerMin, string line)
    {
        /// <summary>1-based plunge number the fault side gave it (<see cref="FaultInjector.MotionQueued"/>); 0: not a plunge.</summary>
        public int Plunge { get; init; }
        /// <summary>The host line that commanded it, as the fault side numbers them.</summary>
        public int HostLine { get; init; }
        public SimMotionKind Kind { get; } = kind;
        public Vec3 Target { get; } = target;
        /// <summary>Null: rapid.</summary>
        public double? FeedMmPerMin { get; } = feedMmPerMin;
        public string Line { get; } = line;
        public double DwellSeconds { get; set; }
        /// <summary>A G38.x probe move: the probe input is watched while it runs.</summary>
        public bool Probing { get; init; }
    }

    /// <summary>The executing part of the front block, from rest at <see cref="From"/> starting at <see cref="StartSim"/>.</summary>
    private sealed record Segment(Block Block, Vec3 From, double StartSim, TrapezoidMove Move, double Duration, bool SpindleOn);
}

/// <summary>A real-time byte as the simulated board received it.</summary>
public sealed class RealtimeByteEventArgs(byte command, long arrivedTimestamp) : EventArgs
{
    /// <summary>The byte (a grbl real-time command such as '!' or 0x85).</summary>
    public byte Command { get; } = command;

    /// <summary>TimeProvider.GetTimestamp() when it arrived, before it acted.</summary>
    public long ArrivedTimestamp { get; } = arrivedTimestamp;
}
