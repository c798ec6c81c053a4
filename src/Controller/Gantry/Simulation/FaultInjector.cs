using System.Globalization;
using System.Text;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// The fault side of <see cref="SimulatedGantry"/>: every fault of a <see cref="FaultPlan"/> (when it strikes, what
/// it decides, the state it keeps) and the log of what it did (<see cref="Log"/>). The firmware model calls the
/// hooks below at the points where a fault can strike and carries out what they answer (write or withhold output,
/// raise ALARM:1, restart, hang, pull the cable); it keeps no fault state of its own.
/// </summary>
/// <remarks>
/// <para>
/// Contract of every hook (every member but the constructor and <see cref="StartLateAnswers"/>): called with the
/// simulator's lock held (the lock given to the constructor, which the delay-ok loop takes too), so no hook locks or waits; times are simulated seconds since power-on unless a name
/// says otherwise. With nothing planned for it a hook answers "no change" and draws no random number. Host lines
/// and plunges are numbered as <see cref="FaultPlan"/> says.
/// </para>
/// <para>Where the faults strike:</para>
/// <list type="table">
/// <item><term>bytes arriving</term><description><see cref="HostBytesArriving"/>: drop, flip, drop-at-line, flip-at-line.
/// <see cref="ReceiveBufferBytes"/>, <see cref="ReceiveBufferOverflowed"/>: rx.</description></item>
/// <item><term>a line executed</term><description><see cref="LineTaken"/>, <see cref="GcodeParsed"/>, <see cref="MotionQueued"/>:
/// no fault; they tell the line and plunge numbers the other faults name.</description></item>
/// <item><term>a line answered</term><description><see cref="LineAnswered"/>: lose-ok-at-line, delay-ok (which writes later itself).</description></item>
/// <item><term>a status report on the wire</term><description><see cref="StatusReportOnTheWire"/>: garble-status, garble-status-at-dot.</description></item>
/// <item><term>a plunge starting</term><description><see cref="PlungeStarting"/>, then <see cref="PlungeStrikeSim"/> and
/// <see cref="PlungeStruck"/>: alarm-at-dot, reset-at-dot; arms garble-status-at-dot.</description></item>
/// <item><term>a plunge at depth</term><description><see cref="PlungeReachedDepth"/>: stall-at-dot, disconnect-at-dot.</description></item>
/// <item><term>the main loop (stall-at-dot)</term><description><see cref="MainLoopHung"/>, <see cref="RealtimeIgnored"/>,
/// <see cref="OutputHeld"/>, <see cref="MainLoopHungUntilSim"/>, <see cref="MainLoopResumes"/>, <see cref="BoardRestarted"/>.</description></item>
/// <item><term>homing</term><description><see cref="HomingStarting"/>, <see cref="HomingFailed"/>: homing-fail.</description></item>
/// </list>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "seeded fault noise, so that a fault plan always plays the same way: not security")]
internal sealed class FaultInjector
{
    private readonly FaultPlan _plan;
    private readonly List<FaultEvent> _log = [];
    private readonly HostByteFaults _hostBytes;
    private readonly AnswerFaults _answers;
    private readonly StatusReportFaults _statusReports;
    private readonly PlungeFaults _plunges;
    private readonly StallFault _stall;
    private int _currentLine; // the host line the firmware is executing (LineTaken)
    private bool _disconnectFired;
    private bool _homingFailFired;

    /// <param name="plan">What to inject.</param>
    /// <param name="time">The simulator's clock; delay-ok waits on it.</param>
    /// <param name="timeScale">Simulated seconds per wall second (the milliseconds of a plan are wall time).</param>
    /// <param name="gate">The simulator's lock, which the delay-ok loop takes to write an answer.</param>
    /// <param name="writeLateAnswer">
    /// Called under <paramref name="gate"/> when an answer delay-ok held back is due, with the epoch it was given in
    /// (<see cref="LineAnswered"/>) and its text; the firmware writes it unless a reset came since.
    /// </param>
    public FaultInjector(FaultPlan plan, TimeProvider time, double timeScale, Lock gate, Action<long, string> writeLateAnswer)
    {
        _plan = plan;
        _hostBytes = new HostByteFaults(plan, _log);
        _answers = new AnswerFaults(plan, _log, time, gate, writeLateAnswer);
        _statusReports = new StatusReportFaults(plan, _log);
        _plunges = new PlungeFaults(plan, _log);
        _stall = new StallFault(plan, _log, timeScale);
    }

    /// <summary>Every fault injected so far, in order (the live list: copy it under the lock).</summary>
    public IReadOnlyList<FaultEvent> Log => _log;

    /// <summary>
    /// Starts the delay-ok loop, which hands held answers back when they are due, when the plan delays answers; null
    /// otherwise. Called once, at power-on, without the lock; the loop ends when <paramref name="ct"/> is cancelled.
    /// </summary>
    public Task? StartLateAnswers(CancellationToken ct) => _plan.DelayOkMs > 0 ? Task.Run(() => _answers.RunAsync(ct), CancellationToken.None) : null;

    // ---------------------------------------------------------------- bytes arriving (host → board)

    /// <summary>A byte as it reaches the firmware, with the host line it belongs to.</summary>
    public readonly record struct Ingress(byte Value, int Line);

    /// <summary>
    /// Bytes arriving from the host: what of <paramref name="data"/> reaches the firmware, each byte with its host line
    /// (the number the firmware hands back in <see cref="LineTaken"/>). Real-time bytes (<paramref name="isRealtime"/>)
    /// pass untouched. The bytes of a line an *-at-line fault targets are held until its newline arrives. The returned
    /// list is reused by the next call. Faults: drop, flip, drop-at-line, flip-at-line.
    /// </summary>
    public List<Ingress> HostBytesArriving(ReadOnlySpan<byte> data, Func<byte, bool> isRealtime, double nowSim) =>
        _hostBytes.Transform(data, isRealtime, nowSim);

    /// <summary>The size of the firmware's receive buffer, bytes: <paramref name="boardBytes"/>, or N with rx=N.</summary>
    public int ReceiveBufferBytes(int boardBytes) => _plan.RxBufferBytes ?? boardBytes;

    /// <summary>The receive buffer was full: <paramref name="droppedBytes"/> byte(s) of host line <paramref name="hostLine"/> were lost. Logged as rx when rx=N made the buffer that small.</summary>
    public void ReceiveBufferOverflowed(int capacityBytes, int droppedBytes, int hostLine, double nowSim)
    {
        if (!_plan.RxBufferBytes.HasValue) return;
        Record(_log, "rx", nowSim, hostLine, null,
            string.Create(CultureInfo.InvariantCulture, $"receive buffer of {capacityBytes} bytes full: {droppedBytes} byte(s) of line {hostLine} dropped"));
    }

    // ---------------------------------------------------------------- a line executed

    /// <summary>The firmware took host line <paramref name="hostLine"/> from its receive buffer to execute it (every line, whatever becomes of it).</summary>
    public void LineTaken(int hostLine)
    {
        _currentLine = hostLine;
        _plunges.LineTaken();
    }

    /// <summary>The line being executed parsed as G-code without error (a G4 makes the next line a possible plunge).</summary>
    public void GcodeParsed(GcodeBlock block) => _plunges.GcodeParsed(block);

    /// <summary>
    /// The firmware queued the motion of the G-code line being executed. Returns its plunge number, which the firmware
    /// carries on the block and hands back to the plunge hooks; 0: not a plunge.
    /// </summary>
    /// <param name="feed">A G1 move (not G0).</param>
    /// <param name="relative">Its axis words are relative (G91 in effect, no G53).</param>
    /// <param name="block">The parsed line.</param>
    public int MotionQueued(bool feed, bool relative, GcodeBlock block) => _plunges.MotionQueued(feed, relative, block);

    // ---------------------------------------------------------------- a line answered

    /// <summary>
    /// The firmware is about to write <paramref name="answer"/> ("ok" or "error:N", with its line end) for the line being
    /// executed. True: write it now. False: a fault took it; lose-ok-at-line drops that line's ok, delay-ok holds every ok
    /// (and any error behind one, to keep answers in order) and hands it back later through the constructor's callback.
    /// </summary>
    /// <param name="answer">The text.</param>
    /// <param name="isOk">True for an ok.</param>
    /// <param name="epoch">The firmware's reset count now, handed back with a late answer.</param>
    /// <param name="nowSim">Now.</param>
    public bool LineAnswered(string answer, bool isOk, long epoch, double nowSim) => _answers.Answering(answer, isOk, epoch, _currentLine, nowSim);

    // ---------------------------------------------------------------- a status report on the wire

    /// <summary>A status report (with its line end) going on the wire: the text the host receives. Faults: garble-status, garble-status-at-dot.</summary>
    public string StatusReportOnTheWire(string report, double nowSim) => _statusReports.OnTheWire(report, nowSim);

    // ---------------------------------------------------------------- a plunge

    /// <summary>
    /// Plunge <paramref name="plunge"/> starts to move at <paramref name="startSim"/> and, unless stopped, reaches depth
    /// <paramref name="durationSeconds"/> later (called again when it starts again after a hold). Arms alarm-at-dot (to
    /// strike at its start) or reset-at-dot (halfway; see <see cref="PlungeStrikeSim"/>), and garble-status-at-dot.
    /// </summary>
    public void PlungeStarting(int plunge, double startSim, double durationSeconds)
    {
        _statusReports.PlungeStarted(plunge);
        _plunges.Arm(plunge, startSim, durationSeconds);
    }

    /// <summary>
    /// When an armed alarm-at-dot or reset-at-dot strikes plunge <paramref name="plunge"/> if it is moving, not held, at
    /// that time (the firmware then stops it there and calls <see cref="PlungeStruck"/>); +∞ when nothing is armed for it.
    /// </summary>
    public double PlungeStrikeSim(int plunge) => _plunges.StrikeSim(plunge);

    /// <summary>
    /// The firmware stopped plunge <paramref name="plunge"/> (host line <paramref name="hostLine"/>, text <paramref name="line"/>)
    /// from Z <paramref name="fromZ"/> at Z <paramref name="stoppedZ"/> at <paramref name="atSim"/>, the strike's time: logs the
    /// strike, disarms it, and answers what the firmware must now do.
    /// </summary>
    public PlungeStrike PlungeStruck(int plunge, int hostLine, string line, double fromZ, double stoppedZ, double atSim) =>
        _plunges.Struck(plunge, hostLine, line, fromZ, stoppedZ, atSim);

    /// <summary>
    /// Plunge <paramref name="plunge"/> (host line <paramref name="hostLine"/>) reached its depth at <paramref name="atSim"/>:
    /// what was armed for it is disarmed; stall-at-dot hangs the main loop (<see cref="MainLoopHung"/>) and disconnect-at-dot
    /// pulls the cable, as the answer says.
    /// </summary>
    public DepthStrike PlungeReachedDepth(int plunge, int hostLine, double atSim)
    {
        _plunges.ReachedDepth(plunge);
        var hangs = _stall.Start(plunge, hostLine, atSim);
        var pullsCable = false;
        if (!_disconnectFired && _plan.DisconnectAtDot == plunge)
        {
            _disconnectFired = true;
            pullsCable = true;
            Record(_log, "disconnect-at-dot", atSim, hostLine, plunge, string.Create(CultureInfo.InvariantCulture, $"cable pulled after plunge {plunge} reached depth"));
        }
        return new DepthStrike(hangs, pullsCable);
    }

    /// <summary>What an alarm-at-dot or reset-at-dot makes the firmware do as it strikes.</summary>
    public enum PlungeStrike
    {
        /// <summary>alarm-at-dot: a hard limit trips (ALARM:1, position lost, locked until reset; the line gets no answer).</summary>
        HardLimit,
        /// <summary>reset-at-dot: the board restarts by itself, as on power-up (banner, no ALARM line, homing lost).</summary>
        BrownOut,
    }

    /// <summary>What the firmware must do when a plunge reached depth.</summary>
    /// <param name="MainLoopHangs">stall-at-dot: its main loop just hung; the executor must look at <see cref="MainLoopHungUntilSim"/>.</param>
    /// <param name="PullsCable">disconnect-at-dot: the cable is out (as <see cref="SimulatedGantry.Disconnect"/>).</param>
    public readonly record struct DepthStrike(bool MainLoopHangs, bool PullsCable);

    // ---------------------------------------------------------------- the main loop (stall-at-dot)

    /// <summary>
    /// True while the firmware's main loop hangs: it takes no line, no wait of the protocol loop ends, it acts on no
    /// real-time command and writes nothing; the planner finishes what it holds.
    /// </summary>
    public bool MainLoopHung => _stall.Hung;

    /// <summary>When a hung main loop runs again (the firmware then calls <see cref="MainLoopResumes"/>); +∞ when not hung or hung for good.</summary>
    public double MainLoopHungUntilSim => _stall.UntilSim;

    /// <summary>A real-time command reached the firmware: true when a hung main loop ignores it (a '?' is remembered and answered when it runs again).</summary>
    public bool RealtimeIgnored(byte command) => _stall.Ignores(command);

    /// <summary>The firmware is writing <paramref name="text"/>: true when a hung main loop holds it back until it runs again.</summary>
    public bool OutputHeld(string text) => _stall.Holds(text);

    /// <summary>
    /// Null, or the hang is over at <paramref name="nowSim"/> (logged): the firmware writes <see cref="MainLoopResume.HeldOutput"/>,
    /// then, when <see cref="MainLoopResume.StatusAsked"/>, one status report of now through <see cref="StatusReportOnTheWire"/>.
    /// </summary>
    public MainLoopResume? MainLoopResumes(double nowSim) => _stall.Resumes(nowSim);

    /// <summary>What a main loop that runs again after a stall writes first.</summary>
    /// <param name="HeldOutput">What it wrote while hung.</param>
    /// <param name="StatusAsked">A '?' arrived while it hung.</param>
    public readonly record struct MainLoopResume(string HeldOutput, bool StatusAsked);

    /// <summary>A hardware reset (DTR): a hung main loop starts again at once, and what it held is lost.</summary>
    public void BoardRestarted() => _stall.Restarted();

    // ---------------------------------------------------------------- probe

    /// <summary>What the probe wire does during one probe cycle.</summary>
    public enum ProbeInput
    {
        /// <summary>It reads the skin: triggered while the needle tip touches it.</summary>
        Normal,
        /// <summary>probe-stuck: it reads triggered whatever touches it (a shorted wire, a switch stuck closed).</summary>
        Stuck,
        /// <summary>probe-cut: it never reads triggered (a cut wire): a G38.2 runs its whole distance.</summary>
        Cut,
    }

    /// <summary>A probe cycle starts: counts it, and says what its wire does (probe-stuck, probe-cut from their probe number on), logging the first cycle each fault strikes.</summary>
    public ProbeInput ProbeStarting(double nowSim)
    {
        _probes++;
        var n = _probes.ToString(CultureInfo.InvariantCulture);
        if (_plan.ProbeStuckFrom is { } stuck && _probes >= stuck)
        {
            if (_probes == stuck) Record(_log, "probe-stuck", nowSim, _currentLine, null, $"probe {n}: the probe input reads triggered before the cycle moves");
            return ProbeInput.Stuck;
        }
        if (ProbeCutFrom is { } cut && _probes >= cut)
        {
            if (_probes == cut) Record(_log, "probe-cut", nowSim, _currentLine, null, $"probe {n}: the probe wire is cut, the input never triggers");
            return ProbeInput.Cut;
        }
        return ProbeInput.Normal;
    }

    /// <summary>The wire is cut now (a cable caught mid-session): from the next probe cycle on, the input never triggers. Under the simulator's lock.</summary>
    public void CutProbeWire() => _probeCutNowFrom ??= _probes + 1;

    private int? _probeCutNowFrom;

    private int? ProbeCutFrom => _plan.ProbeCutFrom is { } planned && _probeCutNowFrom is { } now ? Math.Min(planned, now) : _plan.ProbeCutFrom ?? _probeCutNowFrom;

    /// <summary>A probe cycle ended; remembered for tests that read the fault log beside the probe results.</summary>
    public void ProbeEnded(bool found, Vec3 reportedMachine, double nowSim)
    {
        if (ProbeCutFrom is { } cut && _probes >= cut)
        {
            Record(_log, "probe-cut", nowSim, _currentLine, null, string.Create(CultureInfo.InvariantCulture, $"probe {_probes} ended {(found ? "with" : "without")} contact at {reportedMachine}"));
        }
    }

    private int _probes;

    // ---------------------------------------------------------------- homing

    /// <summary>A homing cycle starts ($H accepted): the alarm it must fail with (homing-fail, first cycle only: its X/Y switches never trip), or null.</summary>
    public int? HomingStarting()
    {
        if (_homingFailFired || _plan.HomingFailAlarm is not { } alarm) return null;
        _homingFailFired = true;
        return alarm;
    }

    /// <summary>The failing homing cycle ran out of search distance: logged, as the firmware writes ALARM:<paramref name="alarm"/>.</summary>
    public void HomingFailed(int alarm, double nowSim) =>
        Record(_log, "homing-fail", nowSim, _currentLine, null, string.Create(CultureInfo.InvariantCulture, $"homing failed: ALARM:{alarm}"));

    private static void Record(List<FaultEvent> log, string fault, double simSeconds, int? line, int? dot, string detail) =>
        log.Add(new FaultEvent(fault, simSeconds, line, dot, detail));

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    // ================================================================ the faults

    /// <summary>drop, flip, drop-at-line, flip-at-line (host → board bytes); counts the host lines.</summary>
    private sealed class HostByteFaults
    {
        private readonly FaultPlan _plan;
        private readonly List<FaultEvent> _log;
        private readonly Random _dropRandom;
        private readonly Random _flipRandom;
        private readonly List<byte> _heldLine = []; // bytes of a line an *-at-line fault will change, until its newline
        private readonly List<Ingress> _buffer = [];
        private int _hostLine = 1; // the host line the next byte belongs to
        private bool _dropAtLineDone;
        private bool _flipAtLineDone;
        private double _nowSim; // of the Transform call, for the log

        public HostByteFaults(FaultPlan plan, List<FaultEvent> log)
        {
            _plan = plan;
            _log = log;
            _dropRandom = new Random(plan.Seed);
            // A separate stream, so that adding drop to a spec does not move the flips.
            _flipRandom = new Random(unchecked((plan.Seed * 7919) + 104729));
        }

        public List<Ingress> Transform(ReadOnlySpan<byte> data, Func<byte, bool> isRealtime, double nowSim)
        {
            _nowSim = nowSim;
            _buffer.Clear();
            foreach (var original in data)
            {
                if (isRealtime(original))
                {
                    _buffer.Add(new Ingress(original, _hostLine));
                    continue;
                }
                var line = _hostLine;
                if (original == (byte)'\n') _hostLine++;
                if (TargetsLine(line))
                {
                    if (original != (byte)'\n')
                    {
                        _heldLine.Add(original);
                        continue;
                    }
                    foreach (var b in AlterHeldLine(line)) Emit(b, line);
                    _heldLine.Clear();
                }
                Emit(original, line);
            }
            return _buffer;
        }

        private bool TargetsLine(int line) =>
            (!_dropAtLineDone && _plan.DropAtLine == line) || (!_flipAtLineDone && _plan.FlipAtLine == line);

        /// <summary>A line byte after the random faults.</summary>
        private void Emit(byte value, int line)
        {
            if (_plan.DropProbability > 0 && _dropRandom.NextDouble() < _plan.DropProbability)
            {
                Record(_log, "drop", _nowSim, line, null, $"dropped {Show(value)} of line {line}");
                return;
            }
            if (_plan.FlipProbability > 0 && _flipRandom.NextDouble() < _plan.FlipProbability)
            {
                var bit = _flipRandom.Next(8);
                var flipped = (byte)(value ^ (1 << bit));
                Record(_log, "flip", _nowSim, line, null, $"flipped bit {bit} of {Show(value)} in line {line}: now {Show(flipped)}");
                value = flipped;
            }
            _buffer.Add(new Ingress(value, line));
        }

        private List<byte> AlterHeldLine(int line)
        {
            var bytes = new List<byte>(_heldLine);
            var before = Text(bytes);
            if (!_dropAtLineDone && _plan.DropAtLine == line && bytes.Count > 0)
            {
                _dropAtLineDone = true;
                var at = TargetIndex(bytes);
                var dropped = bytes[at];
                bytes.RemoveAt(at);
                Record(_log, "drop-at-line", _nowSim, line, null, $"dropped {Show(dropped)} at column {at + 1} of line {line}: \"{before}\" became \"{Text(bytes)}\"");
            }
            if (!_flipAtLineDone && _plan.FlipAtLine == line && bytes.Count > 0)
            {
                _flipAtLineDone = true;
                var at = TargetIndex(bytes);
                var original = bytes[at];
                bytes[at] = (byte)(original ^ 1);
                Record(_log, "flip-at-line", _nowSim, line, null, $"flipped bit 0 of {Show(original)} at column {at + 1} of line {line}: \"{before}\" became \"{Text(bytes)}\"");
            }
            return bytes;
        }

        /// <summary>The first digit of the first X/Y/Z value, else the first digit, else the first byte.</summary>
        private static int TargetIndex(List<byte> bytes)
        {
            var letter = (byte)0;
            var firstDigit = -1;
            for (var i = 0; i < bytes.Count; i++)
            {
                var b = bytes[i];
                var upper = (byte)char.ToUpperInvariant((char)b);
                if (upper is >= (byte)'A' and <= (byte)'Z')
                {
                    letter = upper;
                }
                else if (b is >= (byte)'0' and <= (byte)'9')
                {
                    if (letter is (byte)'X' or (byte)'Y' or (byte)'Z') return i;
                    if (firstDigit < 0) firstDigit = i;
                }
            }
            return firstDigit >= 0 ? firstDigit : 0;
        }

        private static string Text(List<byte> bytes)
        {
            var sb = new StringBuilder(bytes.Count);
            foreach (var b in bytes) sb.Append(b is >= 0x20 and < 0x7f ? (char)b : '·');
            return sb.ToString();
        }

        private static string Show(byte b) => b is >= 0x20 and < 0x7f
            ? "'" + (char)b + "'"
            : "0x" + b.ToString("x2", CultureInfo.InvariantCulture);
    }

    /// <summary>lose-ok-at-line and delay-ok (board → host answers), with the loop that writes delayed answers.</summary>
    private sealed class AnswerFaults(FaultPlan plan, List<FaultEvent> log, TimeProvider time, Lock gate, Action<long, string> writeLateAnswer)
    {
        private readonly Queue<(long DueTimestamp, long Epoch, string Text)> _delayed = new();
        private TaskCompletionSource _delayedSignal = NewSignal();
        private bool _loseOkFired;

        public bool Answering(string answer, bool isOk, long epoch, int line, double nowSim)
        {
            if (isOk && !_loseOkFired && plan.LoseOkAtLine == line)
            {
                _loseOkFired = true;
                Record(log, "lose-ok-at-line", nowSim, line, null, string.Create(CultureInfo.InvariantCulture, $"the ok of line {line} was never sent"));
                return false;
            }
            if (plan.DelayOkMs > 0 && (isOk || _delayed.Count > 0))
            {
                // Answers stay in order: an error behind a delayed ok waits for it.
                var due = time.GetTimestamp() + (long)(plan.DelayOkMs / 1000 * time.TimestampFrequency);
                _delayed.Enqueue((due, epoch, answer));
                _delayedSignal.TrySetResult();
                Record(log, "delay-ok", nowSim, line, null, string.Create(CultureInfo.InvariantCulture, $"answer to line {line} delayed by {plan.DelayOkMs} ms"));
                return false;
            }
            return true;
        }

        /// <summary>Hands each delayed answer back to the firmware when it is due, in order.</summary>
        public async Task RunAsync(CancellationToken token)
        {
            while (!token.IsCancellationRequested)
            {
                Task signal;
                var wait = Timeout.InfiniteTimeSpan;
                long now;
                lock (gate)
                {
                    if (_delayedSignal.Task.IsCompleted) _delayedSignal = NewSignal();
                    signal = _delayedSignal.Task;
                    now = time.GetTimestamp();
                    while (_delayed.TryPeek(out var due) && due.DueTimestamp <= now)
                    {
                        _delayed.Dequeue();
                        writeLateAnswer(due.Epoch, due.Text);
                    }
                    if (_delayed.TryPeek(out var next)) wait = time.GetElapsedTime(now, next.DueTimestamp);
                }
                await MovableClockWait.WaitForSignalOrDelayAsync(time, now, wait, signal, token).ConfigureAwait(false);
            }
        }
    }

    /// <summary>garble-status and garble-status-at-dot (board → host status reports).</summary>
    private sealed class StatusReportFaults(FaultPlan plan, List<FaultEvent> log)
    {
        private readonly Random _garbleRandom = new(unchecked((plan.Seed * 104723) + 7907));
        private int _statusReports; // status reports sent since power-on
        private int _garbleLeft = -1; // reports garble-status-at-dot still damages; -1: not armed yet

        public void PlungeStarted(int plunge)
        {
            if (_garbleLeft < 0 && plan.GarbleStatusAtDot == plunge) _garbleLeft = plan.GarbleStatusCount;
        }

        public string OnTheWire(string report, double nowSim)
        {
            _statusReports++;
            var n = _statusReports;
            var end = report.IndexOf('>', StringComparison.Ordinal);
            if (end < 2) return report;
            if (_garbleLeft > 0)
            {
                _garbleLeft--;
                var digit = report.AsSpan(0, end).IndexOfAnyInRange('0', '9');
                if (digit > 0)
                {
                    var damaged = report[..digit] + (char)(report[digit] ^ 0x40) + report[(digit + 1)..];
                    Record(log, "garble-status-at-dot", nowSim, null, null, string.Create(CultureInfo.InvariantCulture, $"status report {n} damaged: \"{report.TrimEnd()}\" became \"{damaged.TrimEnd()}\""));
                    return damaged;
                }
            }
            if (plan.GarbleStatusProbability > 0 && _garbleRandom.NextDouble() < plan.GarbleStatusProbability)
            {
                var at = 1 + _garbleRandom.Next(end - 1); // strictly between '<' and '>'
                string damaged;
                if (_garbleRandom.Next(3) == 0)
                {
                    damaged = report.Remove(at, 1);
                }
                else
                {
                    char flipped;
                    do
                    {
                        flipped = (char)((report[at] ^ (1 << _garbleRandom.Next(8))) & 0xff);
                    }
                    while (flipped is '\n' or '\r');
                    damaged = report[..at] + flipped + report[(at + 1)..];
                }
                Record(log, "garble-status", nowSim, null, null, string.Create(CultureInfo.InvariantCulture, $"status report {n} damaged at column {at + 1}: \"{report.TrimEnd()}\" became \"{damaged.TrimEnd()}\""));
                return damaged;
            }
            return report;
        }
    }

    /// <summary>Numbers the plunges; alarm-at-dot and reset-at-dot (armed as a plunge starts, struck at a time).</summary>
    private sealed class PlungeFaults(FaultPlan plan, List<FaultEvent> log)
    {
        private bool _lastLineWasDwell; // the line before the next one taken was a G4
        private bool _lineFollowsDwell;  // the line being executed came right after a G4: a G91 Z-down move now is a plunge
        private int _plungesQueued;
        private bool _alarmFired, _resetFired;
        private int _armedPlunge;        // the plunge an alarm or reset will strike (0: none) ...
        private double _armedAtSim;      // ... at this time

        public void LineTaken()
        {
            _lineFollowsDwell = _lastLineWasDwell;
            _lastLineWasDwell = false;
        }

        public void GcodeParsed(GcodeBlock block)
        {
            if (block.Dwell) _lastLineWasDwell = true;
        }

        /// <summary>A plunge: a feed, relative, Z only, downwards, right after a G4 (see <see cref="FaultPlan"/>).</summary>
        public int MotionQueued(bool feed, bool relative, GcodeBlock block) =>
            feed && _lineFollowsDwell && relative && block.Z < 0 && block.X is null && block.Y is null ? ++_plungesQueued : 0;

        /// <summary>alarm-at-dot strikes as plunge N starts, reset-at-dot halfway through it; each once.</summary>
        public void Arm(int plunge, double startSim, double durationSeconds)
        {
            if (!_alarmFired && plan.AlarmAtDot == plunge)
            {
                _alarmFired = true;
                _armedPlunge = plunge;
                _armedAtSim = startSim;
            }
            else if (!_resetFired && plan.ResetAtDot == plunge)
            {
                _resetFired = true;
                _armedPlunge = plunge;
                _armedAtSim = startSim + (durationSeconds / 2);
            }
        }

        public double StrikeSim(int plunge) => plunge > 0 && plunge == _armedPlunge ? _armedAtSim : double.PositiveInfinity;

        public PlungeStrike Struck(int plunge, int hostLine, string line, double fromZ, double stoppedZ, double atSim)
        {
            _armedPlunge = 0;
            var where = string.Create(CultureInfo.InvariantCulture, $"\"{line}\" from Z{fromZ:0.###} stopped at Z{stoppedZ:0.###}");
            var number = plunge.ToString(CultureInfo.InvariantCulture);
            if (plan.AlarmAtDot == plunge)
            {
                Record(log, "alarm-at-dot", atSim, hostLine, plunge, "hard limit (ALARM:1) as plunge " + number + " started: " + where);
                return PlungeStrike.HardLimit;
            }
            Record(log, "reset-at-dot", atSim, hostLine, plunge, "spontaneous reset halfway through plunge " + number + ": " + where);
            return PlungeStrike.BrownOut;
        }

        public void ReachedDepth(int plunge)
        {
            if (plunge == _armedPlunge) _armedPlunge = 0;
        }
    }

    /// <summary>stall-at-dot: the main loop hangs when plunge N reaches depth, for the plan's wall milliseconds or for good.</summary>
    private sealed class StallFault(FaultPlan plan, List<FaultEvent> log, double timeScale)
    {
        private readonly StringBuilder _heldOutput = new();
        private bool _fired;
        private double _untilSim;
        private bool _statusAsked;

        public bool Hung { get; private set; }

        public double UntilSim => Hung ? _untilSim : double.PositiveInfinity;

        public bool Start(int plunge, int hostLine, double atSim)
        {
            if (_fired || plan.StallAtDot != plunge) return false;
            _fired = true;
            Hung = true;
            _untilSim = plan.StallMs is { } ms ? atSim + (ms / 1000 * timeScale) : double.PositiveInfinity;
            Record(log, "stall-at-dot", atSim, hostLine, plunge, plan.StallMs is { } wallMs
                ? string.Create(CultureInfo.InvariantCulture, $"firmware hangs for {wallMs} ms (wall) after plunge {plunge} reached depth")
                : string.Create(CultureInfo.InvariantCulture, $"firmware hangs for good after plunge {plunge} reached depth"));
            return true;
        }

        public bool Ignores(byte command)
        {
            if (!Hung) return false;
            if (command == (byte)'?') _statusAsked = true;
            return true;
        }

        public bool Holds(string text)
        {
            if (!Hung) return false;
            _heldOutput.Append(text);
            return true;
        }

        public MainLoopResume? Resumes(double nowSim)
        {
            if (!Hung || nowSim + SimulatedGantry.TimeEpsilon < _untilSim) return null;
            Hung = false;
            Record(log, "stall-at-dot", nowSim, null, null, "firmware answers again");
            var resume = new MainLoopResume(_heldOutput.ToString(), _statusAsked);
            _heldOutput.Clear();
            _statusAsked = false;
            return resume;
        }

        public void Restarted()
        {
            Hung = false;
            _heldOutput.Clear();
            _statusAsked = false;
        }
    }
}
