using System.Globalization;
using System.Text;
using SmpRobot.Geometry;

namespace SmpRobot.Controller.Gantry.Simulation;

// The protocol loop: takes lines out of the receive buffer, executes them and answers ok / error:N in
// order. Like grbl it reads no further while a line waits (planner full, sync, dwell), which is what
// makes "ok" mean "parsed and queued".
public sealed partial class SimulatedGantry
{
    /// <param name="LineNumber">The host line whose newline ended it (see <see cref="FaultPlan"/>).</param>
    private sealed record PendingLine(string Compact, string Raw, bool Overflow, double ArrivalSim, int LineNumber);

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
                line = _poweredOn && !_awaitingReset && !_stalled ? TryTakeLine() : null;
                if (line is not null) _currentLine = line.LineNumber;
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
        bool afterDwell;
        lock (_gate)
        {
            lineTime = Math.Max(line.ArrivalSim, _loopTimeSim);
            afterDwell = _previousLineWasDwell;
            _previousLineWasDwell = false;
        }
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
        await ExecuteGcodeAsync(text, line.Raw, lineTime, epoch, afterDwell, line.LineNumber).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- G-code

    private async Task ExecuteGcodeAsync(string text, string raw, double lineTime, long epoch, bool afterDwell, int lineNumber)
    {
        var error = GcodeBlock.Parse(text, jog: false, out var block);
        if (error != 0)
        {
            Respond(epoch, error);
            return;
        }
        if (block.Dwell)
        {
            lock (_gate) _previousLineWasDwell = true;
        }

        Vec3? target;
        bool check;
        bool isPlunge;
        lock (_gate)
        {
            if (_epoch != epoch) return;
            check = _checkMode;
            var motion = block.Motion ?? _motionMode;
            var feed = block.F ?? _feedMmPerMin;
            var axisCommand = block.Motion.HasValue || block.HasAxisWords;
            if (axisCommand && motion == 1 && !(feed > 0))
            {
                Respond(epoch, GrblError.UndefinedFeedRate);
                return;
            }
            var incremental = block.Distance is { } d ? d == 91 : _incremental;
            target = block.HasAxisWords ? Target(block, incremental && !block.MachineCoordinates, _parserPosition) : null;
            // A plunge, for the *-at-dot faults: relative, Z only, downwards, right after a G4 (see FaultPlan).
            isPlunge = afterDwell && incremental && !block.MachineCoordinates && block.Z < 0 && block.X is null && block.Y is null;
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

        if (target is { } goal)
        {
            bool outside;
            lock (_gate) outside = Profile.SoftLimits && !InEnvelope(goal);
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
                    var plunge = isPlunge && kind == SimMotionKind.Feed ? ++_plungesParsed : 0;
                    Enqueue(new Block(kind, _grid.Quantise(goal), kind == SimMotionKind.Rapid ? null : _feedMmPerMin, raw) { Plunge = plunge, HostLine = lineNumber }, lineTime);
                }
                _parserPosition = goal;
            }
        }
        Respond(epoch, 0);
    }

    private static Vec3 Target(GcodeBlock block, bool incremental, Vec3 from) => incremental
        ? new Vec3(from.X + (block.X ?? 0), from.Y + (block.Y ?? 0), from.Z + (block.Z ?? 0))
        : new Vec3(block.X ?? from.X, block.Y ?? from.Y, block.Z ?? from.Z);

    private bool InEnvelope(Vec3 p)
    {
        const double tolerance = 1e-9;
        var max = Profile.MaxTravelMm;
        return p.IsFinite
            && p.X >= -tolerance && p.X <= max.X + tolerance
            && p.Y >= -tolerance && p.Y <= max.Y + tolerance
            && p.Z >= -tolerance && p.Z <= max.Z + tolerance;
    }

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
            Emit("ALARM:2\r\n[MSG:Reset to continue]\r\n");
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
                if (!_stalled && condition()) return true;
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
            var now = NowSim();
            if (error == 0 && !_loseOkFired && _faults.Plan.LoseOkAtLine == _currentLine)
            {
                _loseOkFired = true;
                _faults.Record("lose-ok-at-line", now, _currentLine, null, string.Create(CultureInfo.InvariantCulture, $"the ok of line {_currentLine} was never sent"));
                return;
            }
            var text = error == 0 ? "ok\r\n" : string.Create(CultureInfo.InvariantCulture, $"error:{error}\r\n");
            if (_faults.Plan.DelayOkMs > 0 && (error == 0 || _delayedResponses.Count > 0))
            {
                // Answers stay in order: an error behind a delayed ok waits for it.
                var due = _time.GetTimestamp() + (long)(_faults.Plan.DelayOkMs / 1000 * _time.TimestampFrequency);
                _delayedResponses.Enqueue((due, epoch, text));
                _delayedSignal.TrySetResult();
                _faults.Record("delay-ok", now, _currentLine, null, string.Create(CultureInfo.InvariantCulture, $"answer to line {_currentLine} delayed by {_faults.Plan.DelayOkMs} ms"));
                return;
            }
            Emit(text);
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
                        $"[GC:G{_motionMode} G54 G17 G21 G{(_incremental ? 91 : 90)} G94 M{_spindleMode} M9 T0 F{_feedMmPerMin:0.###} S{_spindleSpeed:0.###}]\r\n"));
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
                    // Settings are the profile's: writes ($x=val), startup lines and the rest are not supported.
                    Respond(epoch, GrblError.InvalidStatement);
                    break;
            }
        }
    }

    private string SettingsReport()
    {
        var p = Profile;
        var sb = new StringBuilder();
        void Line(int number, string value) => sb.Append(CultureInfo.InvariantCulture, $"${number}={value}\r\n");
        static string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);
        Line(13, "0");
        Line(20, p.SoftLimits ? "1" : "0");
        Line(22, p.HomingEnabled ? "1" : "0");
        for (var a = 0; a < 3; a++) Line(100 + a, F(p.StepsPerMm[a]));
        for (var a = 0; a < 3; a++) Line(110 + a, F(p.MaxRateMmPerMin[a]));
        for (var a = 0; a < 3; a++) Line(120 + a, F(p.AccelerationMmPerS2[a]));
        for (var a = 0; a < 3; a++) Line(130 + a, F(p.MaxTravelMm[a]));
        return sb.ToString();
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
            target = Target(block, incremental, _parserPosition);
            feed = block.F!.Value;
            if (!target.IsFinite || (Profile.SoftLimits && !InEnvelope(target)))
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
            // grbl's default cycle: Z first (clear the work), then X and Y together; each axis seeks
            // its switch, pulls off, and locates it again slowly.
            var home = Profile.HomePosition;
            var pullOff = Math.Max(0, _options.HomingPullOffMm);
            var seek = _options.HomingSeekMmPerMin ?? Profile.TravelFeedMmPerMin;
            var locate = _options.HomingLocateMmPerMin;
            var start = _position;
            var zTop = new Vec3(start.X, start.Y, home.Z);
            var zOff = new Vec3(start.X, start.Y, Math.Max(0, home.Z - pullOff));
            var xyOff = new Vec3(Math.Min(Profile.MaxTravelMm.X, home.X + pullOff), Math.Min(Profile.MaxTravelMm.Y, home.Y + pullOff), home.Z);
            _plannerPosition = start;
            Enqueue(new Block(SimMotionKind.Homing, zTop, seek, raw), lineTime);
            Enqueue(new Block(SimMotionKind.Homing, zOff, seek, raw), lineTime);
            Enqueue(new Block(SimMotionKind.Homing, zTop, locate, raw), lineTime);
            Enqueue(new Block(SimMotionKind.Homing, home, seek, raw), lineTime);
            Enqueue(new Block(SimMotionKind.Homing, xyOff, seek, raw), lineTime);
            Enqueue(new Block(SimMotionKind.Homing, home, locate, raw), lineTime);
            Pulse();
        }
        if (!await WaitUntilAsync(epoch, () => _planner.Count == 0 && _active is null).ConfigureAwait(false)) return;
        lock (_gate)
        {
            if (_epoch != epoch) return;
            _homing = false;
            _alarm = false;
            _homed = true;
            _loopTimeSim = Math.Max(lineTime, _syncedAtSim);
            _position = _parserPosition = _plannerPosition = Profile.HomePosition;
            Respond(epoch, 0);
            Pulse();
        }
    }
}
