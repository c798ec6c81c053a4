using System.Globalization;
using System.Text;
using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Controller.Gantry.Simulation;

// The protocol loop: takes lines out of the receive buffer, executes them and answers ok / error:N in
// order. Like grbl it reads no further while a line waits (planner full, sync, dwell), which is what
// makes "ok" mean "parsed and queued".
public sealed partial class SimulatedGantry
{
    /// <param name="HostLine">The host line whose newline ended it, as the fault side numbers them (<see cref="FaultInjector.HostBytesArriving"/>).</param>
    private sealed record PendingLine(string Compact, string Raw, bool Overflow, double ArrivalSim, int HostLine);

    private async Task ProtocolLoopAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            PendingLine? line;
            long epoch;
            Task changed;
            lock (_gate)
            {
                if (_poweredOn) Advance(NowSim()); // a stall may be over
                line = _poweredOn && !_awaitingReset && !_faults.MainLoopHung ? TryTakeLine() : null;
                if (line is not null) _faults.LineTaken(line.HostLine);
                epoch = _epoch;
                changed = _changed.Task;
            }
            if (line is null)
            {
                lock (_gate) MarkProtocolBlocked(changed);
                await changed.WaitAsync(token).ConfigureAwait(false);
                continue;
            }
            await ExecuteLineAsync(line, epoch).ConfigureAwait(false);
        }
    }

    /// <summary>Moves bytes from the receive buffer into the line buffer (grbl's compaction) until a line ends.</summary>
    private PendingLine? TryTakeLine()
    {
        while (_rx.Count > 0)
        {
            var c = (char)_rx.Dequeue();
            if (c == '\n')
            {
                var (arrival, number) = _newlineArrivals.Count > 0 ? _newlineArrivals.Dequeue() : (NowSim(), 0);
                var line = new PendingLine(_lineCompact.ToString(), _lineRaw.ToString().Trim(), _lineOverflow, arrival, number);
                ClearLineBuffer();
                return line;
            }
            if (c == '\r') continue;
            if (_lineRaw.Length < 256) _lineRaw.Append(c);
            if (_inParenComment)
            {
                if (c == ')') _inParenComment = false;
                continue;
            }
            if (_inLineComment || c <= ' ') continue;
            if (c == '(')
            {
                _inParenComment = true;
                continue;
            }
            if (c == ';')
            {
                _inLineComment = true;
                continue;
            }
            if (_lineCompact.Length >= LineBufferSize - 1)
            {
                _lineOverflow = true;
                continue;
            }
            _lineCompact.Append(char.ToUpperInvariant(c));
        }
        return null;
    }

    private void ClearLineBuffer()
    {
        _lineCompact.Clear();
        _lineRaw.Clear();
        _lineOverflow = false;
        _inParenComment = false;
        _inLineComment = false;
    }

    private async Task ExecuteLineAsync(PendingLine line, long epoch)
    {
        // The moment an infinitely fast firmware would take this line: when it arrived, but not
        // before the previous line was done. Keeps timing exact when the clock jumps (FakeTimeProvider).
        double lineTime;
        lock (_gate) lineTime = Math.Max(line.ArrivalSim, _loopTimeSim);
        if (line.Overflow)
        {
            Respond(epoch, GrblError.Overflow);
            return;
        }
        var text = line.Compact;
        if (text.Length == 0)
        {
            Respond(epoch, 0); // empty or comment line: ok, for syncing
            return;
        }
        if (text[0] == '$')
        {
            await ExecuteSystemCommandAsync(text, line.Raw, lineTime, epoch).ConfigureAwait(false);
            return;
        }
        lock (_gate)
        {
            Advance(NowSim());
            if (_alarm || IsJogging() || _hold == HoldKind.JogCancel)
            {
                Respond(epoch, GrblError.SystemGcLock);
                return;
            }
        }
        await ExecuteGcodeAsync(text, line.Raw, lineTime, epoch, line.HostLine).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- G-code

    private async Task ExecuteGcodeAsync(string text, string raw, double lineTime, long epoch, int hostLine)
    {
        var error = GcodeBlock.Parse(text, jog: false, out var block);
        if (error != 0)
        {
            Respond(epoch, error);
            return;
        }
        lock (_gate) _faults.GcodeParsed(block);

        Vec3? target;
        bool check;
        bool relative;
        lock (_gate)
        {
            if (_epoch != epoch) return;
            check = _checkMode;
            var motion = block.Motion ?? _motionMode;
            var feed = block.F ?? _feedMmPerMin;
            var axisCommand = block.Motion.HasValue || block.HasAxisWords;
            var probe = GcodeBlock.IsProbe(motion);
            if (probe && block.Motion.HasValue && !block.HasAxisWords)
            {
                Respond(epoch, GrblError.NoAxisWords); // a probe cycle needs a target
                return;
            }
            if (probe && block.MachineCoordinates)
            {
                Respond(epoch, GrblError.G53InvalidMotionMode);
                return;
            }
            if (axisCommand && (motion == 1 || probe) && !(feed > 0))
            {
                Respond(epoch, GrblError.UndefinedFeedRate);
                return;
            }
            var incremental = block.Distance is { } d ? d == 91 : _incremental;
            relative = incremental && !block.MachineCoordinates;
            // Words are machine (counter) coordinates; inside, the simulator works in physical ones.
            target = block.HasAxisWords ? Target(block, relative, _parserPosition + _counterOffset) - _counterOffset : null;
            if (target is { } t && !t.IsFinite)
            {
                Respond(epoch, GrblError.BadNumberFormat);
                return;
            }

            // Validated: from here on the block takes effect, in grbl's order of execution.
            if (block.F.HasValue) _feedMmPerMin = block.F.Value;
            if (block.S.HasValue) _spindleSpeed = block.S.Value;
        }

        if (block.Spindle is { } spindleMode)
        {
            // M3/M5 synchronise: the spindle switches only after all queued motion has finished.
            if (!check && !await WaitUntilAsync(epoch, IsSynchronised).ConfigureAwait(false)) return;
            lock (_gate)
            {
                if (_epoch != epoch) return;
                _spindleMode = spindleMode;
                if (!_checkMode)
                {
                    _loopTimeSim = lineTime = SyncedAt(lineTime);
                    SetSpindle(spindleMode != 5, lineTime);
                }
            }
        }

        if (block.Dwell && !check)
        {
            if (!await WaitUntilAsync(epoch, IsSynchronised).ConfigureAwait(false)) return;
            lock (_gate)
            {
                if (_epoch != epoch) return;
                var now = NowSim();
                Advance(now);
                var dwell = new Block(SimMotionKind.Dwell, _position, null, raw) { DwellSeconds = block.P!.Value };
                _planner.AddLast(dwell);
                StartNext(SyncedAt(lineTime));
                Advance(now);
            }
            if (!await WaitUntilAsync(epoch, IsSynchronised).ConfigureAwait(false)) return;
            lock (_gate) _loopTimeSim = lineTime = Math.Max(lineTime, _syncedAtSim); // the dwell's end
        }

        lock (_gate)
        {
            if (_epoch != epoch) return;
            if (block.Distance is { } distance) _incremental = distance == 91;
            if (block.Motion is { } motionMode) _motionMode = motionMode;
        }

        int probeMode;
        lock (_gate) probeMode = GcodeBlock.IsProbe(_motionMode) ? _motionMode : 0;
        if (probeMode != 0 && target is { } probeTarget)
        {
            await ProbeAsync(probeMode, probeTarget, raw, lineTime, epoch, check).ConfigureAwait(false);
            return;
        }

        if (target is { } goal)
        {
            bool outside;
            lock (_gate) outside = Profile.SoftLimits && !Profile.InEnvelope(goal + _counterOffset);
            if (outside)
            {
                await SoftLimitAlarmAsync(epoch).ConfigureAwait(false);
                return;
            }
            if (!check && !await WaitUntilAsync(epoch, () => MotionBlockCount() < Profile.PlannerBlocks).ConfigureAwait(false)) return;
            lock (_gate)
            {
                if (_epoch != epoch) return;
                var kind = _motionMode == 0 ? SimMotionKind.Rapid : SimMotionKind.Feed;
                if (!_checkMode)
                {
                    var plunge = _faults.MotionQueued(kind == SimMotionKind.Feed, relative, block);
                    Enqueue(new Block(kind, _grid.Quantise(goal), kind == SimMotionKind.Rapid ? null : _feedMmPerMin, raw) { Plunge = plunge, HostLine = hostLine }, lineTime);
                }
                _parserPosition = goal;
            }
        }
        Respond(epoch, 0);
    }

    /// <summary>
    /// grbl 1.1's probe cycle (mc_probe_cycle): finish everything queued, refuse with ALARM:4 if the probe input
    /// already reads what the cycle looks for, move towards the target until the input changes (the motion is then
    /// cancelled: it decelerates to a stop and the rest is dropped) or the target is reached, then report
    /// <c>[PRB:x,y,z:1|0]</c> in machine coordinates and answer ok. No contact within the distance: ALARM:5 for
    /// G38.2 and G38.4 (position kept, Alarm state until $X), a report ending in :0 for G38.3 and G38.5. In check
    /// mode the cycle is skipped (no motion, no report).
    /// </summary>
    private async Task ProbeAsync(int mode, Vec3 goal, string raw, double lineTime, long epoch, bool check)
    {
        if (check)
        {
            Respond(epoch, 0);
            return;
        }
        var away = mode is 384 or 385;
        var alarmWithoutContact = mode is 382 or 384;
        bool outside;
        lock (_gate) outside = Profile.SoftLimits && !Profile.InEnvelope(goal + _counterOffset);
        if (outside)
        {
            await SoftLimitAlarmAsync(epoch).ConfigureAwait(false);
            return;
        }
        if (!await WaitUntilAsync(epoch, IsSynchronised).ConfigureAwait(false)) return;
        lock (_gate)
        {
            if (_epoch != epoch) return;
            var now = NowSim();
            Advance(now);
            lineTime = SyncedAt(lineTime);
            var quantised = _grid.Quantise(goal);
            if (_grid.ToSteps(quantised) == _grid.ToSteps(_position))
            {
                Respond(epoch, GrblError.InvalidTarget);
                return;
            }
            _probeInput = _faults.ProbeStarting(lineTime);
            if (ProbeTriggered(_position, lineTime) != away)
            {
                // Already in the state the cycle looks for (a probe touching, or its input stuck): nothing moves.
                _alarm = true;
                Emit("ALARM:4\r\n");
                Respond(epoch, 0);
                Pulse();
                return;
            }
            _probeAway = away;
            _probeContact = null;
            _planner.AddLast(new Block(SimMotionKind.Probe, quantised, _feedMmPerMin, raw) { Probing = true });
            _plannerPosition = quantised;
            StartNext(lineTime);
            Advance(now);
            Pulse();
        }
        if (!await WaitUntilAsync(epoch, IsSynchronised).ConfigureAwait(false)) return;
        lock (_gate)
        {
            if (_epoch != epoch) return;
            var now = NowSim();
            _loopTimeSim = Math.Max(lineTime, _syncedAtSim);
            var found = _probeContact is not null;
            var reported = (_probeContact ?? _position) + _counterOffset;
            _probeContact = null;
            _parserPosition = _plannerPosition = _position;
            if (!found && alarmWithoutContact)
            {
                _alarm = true;
                Emit("ALARM:5\r\n");
            }
            Emit(string.Create(CultureInfo.InvariantCulture, $"[PRB:{Mm(reported.X)},{Mm(reported.Y)},{Mm(reported.Z)}:{(found ? 1 : 0)}]\r\n"));
            _faults.ProbeEnded(found, reported, now);
            Respond(epoch, 0);
            Pulse();
        }
    }

    private static Vec3 Target(GcodeBlock block, bool incremental, Vec3 from) => incremental
        ? new Vec3(from.X + (block.X ?? 0), from.Y + (block.Y ?? 0), from.Z + (block.Z ?? 0))
        : new Vec3(block.X ?? from.X, block.Y ?? from.Y, block.Z ?? from.Z);

    /// <summary>Queues a motion block (zero-length blocks are dropped, as grbl's planner does) and starts it if the machine is free.</summary>
    private void Enqueue(Block block, double lineTime)
    {
        var now = NowSim();
        Advance(now);
        if (_grid.ToSteps(block.Target) == _grid.ToSteps(_plannerPosition)) return;
        _planner.AddLast(block);
        _plannerPosition = block.Target;
        // On an empty planner the block starts when the firmware would have queued it; behind others it chains.
        StartNext(SyncedAt(lineTime));
        Advance(now);
        Pulse();
    }

    /// <summary>
    /// When a sync point that started waiting at <paramref name="waitFrom"/> was reached: the moment the
    /// machine became synchronised, not when this loop noticed (a fake clock may jump past it).
    /// </summary>
    private double SyncedAt(double waitFrom) => Math.Min(NowSim(), Math.Max(waitFrom, _syncedAtSim));

    /// <summary>grbl's protocol_buffer_synchronize: nothing queued or running, and not held.</summary>
    private bool IsSynchronised() => _planner.Count == 0 && _active is null && _hold == HoldKind.None;

    /// <summary>
    /// Soft limit: grbl holds any motion in progress, then resets itself into ALARM:2 (position kept)
    /// and blocks everything until the host sends a soft reset. The offending line gets no answer.
    /// </summary>
    private async Task SoftLimitAlarmAsync(long epoch)
    {
        lock (_gate)
        {
            if (_epoch != epoch) return;
            var now = NowSim();
            Advance(now);
            _softLimitPending = true;
            if (_hold == HoldKind.None && _active is not null)
            {
                _hold = HoldKind.Feed;
                InitiateHold(now);
            }
        }
        if (!await WaitUntilAsync(epoch, () => _active is null || _holdPhase == HoldPhase.Complete).ConfigureAwait(false)) return;
        lock (_gate)
        {
            if (_epoch != epoch) return;
            var now = NowSim();
            Advance(now);
            StopActiveNow(now);
            _planner.Clear();
            EndHold();
            _flushOnStop = false;
            _softLimitPending = false;
            SetSpindle(false, now);
            _parserPosition = _plannerPosition = _position;
            _alarm = true;
            _awaitingReset = true;
            _criticalAlarmSim = now;
            Emit("ALARM:2\r\n[MSG:Reset to continue]\r\n");
            // grbl 1.1 still answers the line that raised the alarm, after the alarm lines.
            Respond(epoch, 0);
            Pulse();
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds (evaluated under the lock); false when a reset intervened.</summary>
    private async Task<bool> WaitUntilAsync(long epoch, Func<bool> condition)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_epoch != epoch) return false;
                Advance(NowSim());
                if (!_faults.MainLoopHung && condition()) return true;
                changed = _changed.Task;
                MarkProtocolBlocked(changed);
            }
            await changed.WaitAsync(_stop.Token).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Test hook: completes once the protocol loop has nothing it can do until something changes
    /// (it waits for input, planner space, a sync point or a reset). With a frozen FakeTimeProvider
    /// this is a quiescent point: every answer due so far has been written.
    /// </summary>
    internal Task WhenProtocolBlockedAsync()
    {
        lock (_gate)
        {
            Advance(NowSim());
            if (_protocolBlocked) return Task.CompletedTask;
            var waiter = NewSignal();
            _blockedWaiters.Add(waiter);
            return waiter.Task;
        }
    }

    private void MarkProtocolBlocked(Task changed)
    {
        // Only when no pulse has happened since the loop last looked: otherwise it is about to run again.
        if (changed != _changed.Task) return;
        _protocolBlocked = true;
        foreach (var waiter in _blockedWaiters) waiter.TrySetResult();
        _blockedWaiters.Clear();
    }

    private void Respond(long epoch, int error)
    {
        lock (_gate)
        {
            if (_epoch != epoch) return;
            var text = error == 0 ? "ok\r\n" : string.Create(CultureInfo.InvariantCulture, $"error:{error}\r\n");
            if (_faults.LineAnswered(text, error == 0, epoch, NowSim())) Emit(text); // else lose-ok or delay-ok took it
        }
    }

    // ---------------------------------------------------------------- $ commands

    private async Task ExecuteSystemCommandAsync(string text, string raw, double lineTime, long epoch)
    {
        if (text.StartsWith("$J=", StringComparison.Ordinal))
        {
            await JogAsync(text[3..], raw, lineTime, epoch).ConfigureAwait(false);
            return;
        }
        if (text == "$H")
        {
            await HomeAsync(raw, lineTime, epoch).ConfigureAwait(false);
            return;
        }
        lock (_gate)
        {
            if (_epoch != epoch) return;
            Advance(NowSim());
            var state = StateText();
            var busy = state == "Run" || state.StartsWith("Hold", StringComparison.Ordinal);
            var idleOrAlarm = state is "Idle" or "Alarm";
            switch (text)
            {
                case "$":
                    Emit("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]\r\n");
                    Respond(epoch, 0);
                    break;
                case "$$":
                    if (busy)
                    {
                        Respond(epoch, GrblError.IdleError);
                        break;
                    }
                    Emit(SettingsReport());
                    Respond(epoch, 0);
                    break;
                case "$G":
                    if (busy)
                    {
                        Respond(epoch, GrblError.IdleError);
                        break;
                    }
                    Emit(string.Create(CultureInfo.InvariantCulture,
                        $"[GC:{MotionModeWord(_motionMode)} G54 G17 G21 G{(_incremental ? 91 : 90)} G94 M{_spindleMode} M9 T0 F{_feedMmPerMin:0.###} S{_spindleSpeed:0.###}]\r\n"));
                    Respond(epoch, 0);
                    break;
                case "$I":
                    if (!idleOrAlarm)
                    {
                        Respond(epoch, GrblError.IdleError);
                        break;
                    }
                    Emit(string.Create(CultureInfo.InvariantCulture,
                        $"[VER:{_options.Version}.20190830:SmpRobot simulator]\r\n[OPT:V,{Profile.PlannerBlocks},{Profile.RxBufferBytes}]\r\n"));
                    Respond(epoch, 0);
                    break;
                case "$X":
                    if (busy)
                    {
                        Respond(epoch, GrblError.IdleError);
                        break;
                    }
                    if (_alarm)
                    {
                        _alarm = false; // position stays unknown: Homed is not restored by an unlock
                        Emit("[MSG:Caution: Unlocked]\r\n");
                        Pulse();
                    }
                    Respond(epoch, 0);
                    break;
                case "$C":
                    if (_checkMode)
                    {
                        // Leaving check mode resets the firmware (banner), as grbl does.
                        Emit("[MSG:Disabled]\r\n");
                        Respond(epoch, 0);
                        ResetFirmware(0, NowSim());
                        break;
                    }
                    if (state != "Idle")
                    {
                        Respond(epoch, GrblError.IdleError);
                        break;
                    }
                    _checkMode = true;
                    Emit("[MSG:Enabled]\r\n");
                    Respond(epoch, 0);
                    Pulse();
                    break;
                default:
                    // $N=value writes the setting as grbl does; startup lines ($Nx=line) and the rest are not supported.
                    Respond(epoch, idleOrAlarm ? WriteSetting(text) : GrblError.IdleError);
                    break;
            }
        }
    }

    private string SettingsReport()
    {
        var p = Profile;
        static string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);
        static string I(int v) => v.ToString(CultureInfo.InvariantCulture);
        var all = new SortedDictionary<int, string>(_otherSettings)
        {
            [10] = I(p.StatusReportMask),
            [13] = _reportInches ? "1" : "0",
            [20] = p.SoftLimits ? "1" : "0",
            [22] = p.HomingEnabled ? "1" : "0",
            [23] = I(p.HomingDirectionMask),
            [27] = F(p.HomingPullOffMm),
        };
        for (var a = 0; a < 3; a++)
        {
            all[100 + a] = F(p.StepsPerMm[a]);
            all[110 + a] = F(p.MaxRateMmPerMin[a]);
            all[120 + a] = F(p.AccelerationMmPerS2[a]);
            all[130 + a] = F(p.MaxTravelMm[a]);
        }
        var sb = new StringBuilder();
        foreach (var (number, value) in all) sb.Append(CultureInfo.InvariantCulture, $"${number}={value}\r\n");
        return sb.ToString();
    }

    // grbl 1.1's settings that the simulator stores without modelling them (pulse, inversions, junction deviation, ...).
    private static readonly HashSet<int> StoredOnlySettings = [0, 1, 2, 3, 4, 5, 6, 11, 12, 21, 24, 25, 26, 30, 31, 32];

    /// <summary>
    /// <c>$N=value</c> as grbl 1.1's settings_store_global_setting takes it: a number it does not know
    /// is error:3, an unreadable value error:2, a negative one error:4; <c>$20=1</c> while homing is
    /// off is error:10, and <c>$22=0</c> turns soft limits off as well. Returns the error (0: ok).
    /// </summary>
    private int WriteSetting(string text)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals < 2 || !int.TryParse(text.AsSpan(1, equals - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var number)) return GrblError.InvalidStatement;
        var valueText = text[(equals + 1)..];
        if (!double.TryParse(valueText, NumberStyles.AllowDecimalPoint | NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value)) return GrblError.BadNumberFormat;
        if (value < 0) return GrblError.NegativeValue;
        var p = Profile;
        var flag = value != 0;
        MachineProfile next;
        switch (number)
        {
            case 10: next = p with { StatusReportMask = (int)value }; break;
            case 13: _reportInches = flag; return 0;
            case 20:
                if (flag && !p.HomingEnabled) return GrblError.SoftLimitError;
                next = p with { SoftLimits = flag };
                break;
            case 22: next = flag ? p with { HomingEnabled = true } : p with { HomingEnabled = false, SoftLimits = false }; break;
            case 23: next = p with { HomingDirectionMask = (int)value & 7 }; break;
            case 27: next = p with { HomingPullOffMm = value }; break;
            case >= 100 and <= 102 or >= 110 and <= 112 or >= 120 and <= 122 or >= 130 and <= 132:
                // Unlike grbl, which stores it, a zero steps/mm, rate or acceleration is refused (error:3): it cannot be simulated.
                if (number < 130 && value == 0) return GrblError.InvalidStatement;
                next = WithAxisSetting(p, number, value);
                break;
            default:
                if (!StoredOnlySettings.Contains(number)) return GrblError.InvalidStatement;
                _otherSettings[number] = number is 11 or 12 or 24 or 25 or 26 ? value.ToString("0.000", CultureInfo.InvariantCulture) : ((int)value).ToString(CultureInfo.InvariantCulture);
                return 0;
        }
        Profile = next;
        _kinematics = new Kinematics(next);
        _grid = new StepGrid(next.StepsPerMm);
        return 0;
    }

    private static MachineProfile WithAxisSetting(MachineProfile p, int number, double value)
    {
        static AxisValues With(AxisValues v, int axis, double value) => axis switch { 0 => v with { X = value }, 1 => v with { Y = value }, _ => v with { Z = value } };
        var axis = number % 10;
        return (number / 10) switch
        {
            10 => p with { StepsPerMm = With(p.StepsPerMm, axis, value) },
            11 => p with { MaxRateMmPerMin = With(p.MaxRateMmPerMin, axis, value) },
            12 => p with { AccelerationMmPerS2 = With(p.AccelerationMmPerS2, axis, value) },
            _ => p with { MaxTravelMm = With(p.MaxTravelMm, axis, value) },
        };
    }

    private async Task JogAsync(string words, string raw, double lineTime, long epoch)
    {
        Vec3 target;
        double feed;
        lock (_gate)
        {
            if (_epoch != epoch) return;
            Advance(NowSim());
            var state = StateText();
            if (state is not ("Idle" or "Jog") || _hold != HoldKind.None)
            {
                Respond(epoch, GrblError.IdleError);
                return;
            }
            var error = GcodeBlock.Parse(words, jog: true, out var block);
            if (error != 0)
            {
                Respond(epoch, error);
                return;
            }
            var incremental = (block.Distance is { } d ? d == 91 : _incremental) && !block.MachineCoordinates;
            target = Target(block, incremental, _parserPosition + _counterOffset) - _counterOffset;
            feed = block.F!.Value;
            if (!target.IsFinite || (Profile.SoftLimits && !Profile.InEnvelope(target + _counterOffset)))
            {
                Respond(epoch, GrblError.TravelExceeded);
                return;
            }
        }
        if (!await WaitUntilAsync(epoch, () => MotionBlockCount() < Profile.PlannerBlocks).ConfigureAwait(false)) return;
        lock (_gate)
        {
            if (_epoch != epoch) return;
            // A jog cancelled while this line waited must not be revived from a stale start point.
            Enqueue(new Block(SimMotionKind.Jog, _grid.Quantise(target), feed, raw), lineTime);
            _parserPosition = target;
        }
        Respond(epoch, 0);
    }

    private async Task HomeAsync(string raw, double lineTime, long epoch)
    {
        int? failAlarm; // homing-fail: the alarm this cycle fails with
        lock (_gate)
        {
            if (_epoch != epoch) return;
            Advance(NowSim());
            if (!Profile.HomingEnabled)
            {
                Respond(epoch, GrblError.SettingDisabled);
                return;
            }
            if (StateText() is not ("Idle" or "Alarm") || _hold != HoldKind.None)
            {
                Respond(epoch, GrblError.IdleError);
                return;
            }
            _homing = true;
            _alarm = false; // state Home while the cycle runs; a failed cycle alarms again
            // grbl's default cycle: Z first (clear the work), then X and Y together; each axis seeks its
            // switch, pulls off, locates it again slowly and pulls off once more. Switches and home are
            // physical places: where grbl's rules put them in the frame homing sets up (MachineProfile).
            var home = Profile.HomePosition;
            var switches = Profile.HomingSwitchPosition;
            var seek = _options.HomingSeekMmPerMin ?? Profile.TravelFeedMmPerMin;
            var locate = _options.HomingLocateMmPerMin;
            var start = _position;
            var zSwitch = new Vec3(start.X, start.Y, switches.Z);
            var zHome = new Vec3(start.X, start.Y, home.Z);
            var xySwitch = new Vec3(switches.X, switches.Y, home.Z);
            _plannerPosition = start;
            failAlarm = _faults.HomingStarting();
            Enqueue(new Block(SimMotionKind.Homing, zSwitch, seek, raw), lineTime);
            Enqueue(new Block(SimMotionKind.Homing, zHome, seek, raw), lineTime);
            Enqueue(new Block(SimMotionKind.Homing, zSwitch, locate, raw), lineTime);
            Enqueue(new Block(SimMotionKind.Homing, zHome, seek, raw), lineTime);
            // homing-fail: the X/Y switches never trip; the seek runs out of search distance.
            Enqueue(new Block(SimMotionKind.Homing, xySwitch, seek, raw), lineTime);
            if (failAlarm is null)
            {
                Enqueue(new Block(SimMotionKind.Homing, home, seek, raw), lineTime);
                Enqueue(new Block(SimMotionKind.Homing, xySwitch, locate, raw), lineTime);
                Enqueue(new Block(SimMotionKind.Homing, home, seek, raw), lineTime);
            }
            Pulse();
        }
        if (!await WaitUntilAsync(epoch, () => _planner.Count == 0 && _active is null).ConfigureAwait(false)) return;
        if (failAlarm is { } code)
        {
            lock (_gate)
            {
                if (_epoch != epoch) return;
                var now = NowSim();
                _faults.HomingFailed(code, now);
                // As grbl 1.1h sends it: the alarm, the $H's ok, then a reset (banner) with homing still to do.
                Emit(string.Create(CultureInfo.InvariantCulture, $"ALARM:{code}\r\n"));
                Respond(epoch, 0);
                _homing = false;
                _alarm = true;
                _homed = false;
                ResetFirmware(0, now);
            }
            return;
        }
        lock (_gate)
        {
            if (_epoch != epoch) return;
            _homing = false;
            _alarm = false;
            _homed = true;
            _loopTimeSim = Math.Max(lineTime, _syncedAtSim);
            // The step counters are set to grbl's home position: from here counter and physical frames agree.
            _position = _parserPosition = _plannerPosition = Profile.HomePosition;
            _counterOffset = Vec3.Zero;
            Respond(epoch, 0);
            Pulse();
        }
    }
}
