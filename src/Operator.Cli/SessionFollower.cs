using System.Net.Sockets;
using Grpc.Core;
using SmpRobot.Contracts.V1;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace SmpRobot.Operator.Cli;

/// <summary>How a session is followed.</summary>
/// <param name="LiveView">Spectre live view on stdout with keys; otherwise a progress line on stderr every ~2 s.</param>
/// <param name="InterruptAlwaysStops">
/// True when this console started the session (run, demo): Ctrl+C is always an e-stop. False (watch): Ctrl+C is an
/// e-stop only while the session may be moving (RUNNING, PAUSING or not yet known), otherwise it stops watching.
/// </param>
/// <param name="Safety">Latest safety status from the heartbeat stream, when there is one.</param>
/// <param name="ConsoleId">This console's heartbeat id, when it sends heartbeats: a resume from here makes it the supervising console.</param>
/// <param name="OfferResume">
/// True for <c>smp watch</c> with keys and a heartbeat: a FAULTED or EMERGENCY_STOPPED session does not end the view; it
/// shows what still stands in the way of a resume (measured every <see cref="SessionFollower.StoppedPollEvery"/>) and
/// space / r resumes it with this console supervising. Needs <paramref name="ConsoleId"/>.
/// </param>
internal sealed record FollowOptions(bool LiveView, bool InterruptAlwaysStops, Func<SafetyStatus?>? Safety = null, string? ConsoleId = null, bool OfferResume = false);

/// <summary>The machine and safety state read after the session ended (and after any e-stop of this console was answered).</summary>
/// <param name="Machine">MachineService.GetStatus after the end; null when it could not be read.</param>
/// <param name="Safety">SafetyService.GetSafetyStatus after the end (and after a latched stop sequence was over); null when it could not be read.</param>
/// <param name="Problem">Why something could not be read; null when both were.</param>
internal sealed record FinalState(MachineStatus? Machine, SafetyStatus? Safety, string? Problem);

/// <summary>Result of following a session.</summary>
/// <param name="Session">The last known session (read again after the end when the controller answered).</param>
/// <param name="Detached">True when the operator stopped watching before the session ended.</param>
/// <param name="EmergencyStopSent">True when this console sent an e-stop while following.</param>
internal sealed record FollowResult(Session Session, bool Detached, bool EmergencyStopSent = false)
{
    /// <summary>What was measured after the end; null when nothing was (tests that build a result by hand).</summary>
    public FinalState? Final { get; init; }

    /// <summary>The outcome of this console's e-stop request, once answered (or found out); null when it sent none.</summary>
    public StopVerdict? EmergencyStop { get; init; }

    /// <summary>
    /// True when the session was PAUSED by an automatic hold that waits for the operator while this console reads
    /// no keys (--no-ui, --json, no terminal): nobody here can resume it, so following ends.
    /// </summary>
    public bool HeldForOperator { get; init; }

    /// <summary>
    /// By the end state; held for the operator without keys exits 3; a detached follow exits 3 after an e-stop, else 0
    /// (the session goes on).
    /// </summary>
    public int ExitCode => HeldForOperator && !ExitCodes.IsEndState(Session.State) ? ExitCodes.Stopped
        : ExitCodes.IsEndState(Session.State) || !Detached
        ? ExitCodes.ForSessionState(Session.State)
        : EmergencyStopSent ? ExitCodes.Stopped : ExitCodes.Success;
}

/// <summary>
/// Follows a session through SessionService.Watch until it reaches COMPLETED, ABORTED, EMERGENCY_STOPPED or FAULTED
/// (or, when this console reads no keys, a hold that waits for the operator), showing progress, and turns e / Esc /
/// Ctrl+C into an immediate emergency stop on the safety channel. When following ends it first waits (bounded) for
/// the answer to every e-stop it sent — they are never cancelled because the session ended — and for a latched stop
/// sequence to finish, then reads the session, machine and safety state again: the final view and the summary show
/// that state, measured after the fact.
/// </summary>
internal sealed class SessionFollower
{
    /// <summary>The reason the controller gives a pause the operator asked for (SessionManager.Pause); every other PAUSED is a hold.</summary>
    public const string OperatorPauseReason = "paused by the operator";

    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan KeyPollEvery = TimeSpan.FromMilliseconds(30);
    private static readonly TimeSpan FinalReadTimeout = TimeSpan.FromSeconds(3);

    /// <summary>How often a stopped session's readiness to resume is measured while the view offers a resume.</summary>
    public static readonly TimeSpan StoppedPollEvery = TimeSpan.FromMilliseconds(500);

    // An e-stop request is answered within its deadline, or the console asks the safety status and waits for the
    // stop sequence: this bounds the whole of that, so ending never hangs on an e-stop that gets no answer.
    private static readonly TimeSpan EmergencyStopWait = ControllerConnection.EmergencyStopTimeout + StopSequence.FinishTimeout + TimeSpan.FromSeconds(8);

    private readonly CommandContext ctx;
    private readonly ControllerConnection conn;
    private readonly FollowOptions options;
    private readonly Lock gate = new();
    private readonly Lock renderGate = new();
    private readonly List<Task> emergencyStops = [];
    private Session? session;
    private MachineStatus? machine;
    private SafetyStatus? replySafety;
    private SafetyStatus? heartbeatAtReply;
    private StopVerdict? emergencyStopVerdict;
    private FinalState? final;
    private bool heldForOperator;
    private string? lastEvent;
    private string? notice;
    private Action refresh = () => { };
    private CancellationTokenSource? watchCts;
    private int interrupts;
    private volatile bool estopSent;
    private int pauseBusy;
    private long lastProgressTimestamp;
    private SessionState lastPrintedState = (SessionState)(-1);
    private string? lastPrintedReason;
    private volatile bool stopped;
    private volatile bool supervising;
    private ResumeReadiness? readiness;

    public SessionFollower(CommandContext ctx, ControllerConnection conn, FollowOptions options)
    {
        this.ctx = ctx;
        this.conn = conn;
        this.options = options;
    }

    /// <summary>True when the operator can press keys here (live view with key input): only then can a hold be resumed from this console.</summary>
    private bool ReadsKeys => options.LiveView && ctx.Host.Keys is not null;

    /// <summary>
    /// PAUSED by the controller itself (a motion hold that outlasted its limit, the envelope, dots in doubt, ...):
    /// it waits for an operator. A pause the operator asked for is not a hold (whoever paused it resumes it).
    /// </summary>
    public static bool IsHeldForOperator(Session s) =>
        s.State == SessionState.Paused && !s.Reason.StartsWith(OperatorPauseReason, StringComparison.Ordinal);

    /// <summary>Follows <paramref name="sessionId"/> (empty = the current session) to its end or until detached.</summary>
    public async Task<FollowResult> FollowAsync(string sessionId, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        watchCts = cts;
        using var subscription = ctx.Host.Interrupts?.Subscribe(OnInterrupt);
        if (!options.LiveView)
        {
            refresh = PrintProgressIfDue;
            var settled = false;
            try
            {
                var plain = await WatchWithMachineAsync(sessionId, cts.Token).ConfigureAwait(false);
                settled = true;
                return await SettleAsync(plain, sessionId).ConfigureAwait(false);
            }
            finally
            {
                // Following failed (controller gone, ...): an e-stop in flight is still answered before the console goes.
                if (!settled) await WaitForEmergencyStopsAsync().ConfigureAwait(false);
            }
        }

        var console = ctx.OutConsole();
        FollowResult? result = null;
        await console.Live(RenderNow()).AutoClear(false).StartAsync(async live =>
        {
            refresh = () =>
            {
                lock (renderGate) live.UpdateTarget(RenderNow());
            };
            using var keysCts = CancellationTokenSource.CreateLinkedTokenSource(cts.Token);
            var keys = ctx.Host.Keys is { } input ? KeyLoopAsync(input, keysCts.Token) : Task.CompletedTask;
            var settled = false;
            try
            {
                var ended = await WatchWithMachineAsync(sessionId, cts.Token).ConfigureAwait(false);
                settled = true;
                // Keys stay live while the console waits for the stop to finish: e still means e-stop.
                result = await SettleAsync(ended, sessionId).ConfigureAwait(false);
            }
            finally
            {
                if (!settled) await WaitForEmergencyStopsAsync().ConfigureAwait(false);
                await keysCts.CancelAsync().ConfigureAwait(false);
                await keys.ConfigureAwait(false);
                refresh();
            }
        }).ConfigureAwait(false);
        return result!;
    }

    /// <summary>
    /// The session watch, with the machine's own status stream beside it: session events come when dots change, so
    /// the gantry state they carry is that of the moment between dots (Idle); the machine stream gives the state
    /// grbl reports now (Run while it moves), at the controller's status rate. The newer of the two is shown.
    /// </summary>
    private async Task<FollowResult> WatchWithMachineAsync(string sessionId, CancellationToken ct)
    {
        using var machineCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var machineWatch = MachineLoopAsync(machineCts.Token);
        try
        {
            return await WatchLoopAsync(sessionId, ct).ConfigureAwait(false);
        }
        finally
        {
            await machineCts.CancelAsync().ConfigureAwait(false);
            await machineWatch.ConfigureAwait(false);
        }
    }

    /// <summary>Follows MachineService.WatchStatus until cancelled; without it (refused, unavailable) the session events' status is shown. Never throws.</summary>
    private async Task MachineLoopAsync(CancellationToken ct)
    {
        try
        {
            using var call = conn.Machine.WatchStatus(new WatchMachineStatusRequest(), cancellationToken: ct);
            while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
            {
                TakeMachine(call.ResponseStream.Current);
                refresh();
            }
        }
        catch (RpcException)
        {
            // Cancelled at the end, or not available: the session events still carry the machine status.
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Keeps <paramref name="status"/> when it is at least as new as the one shown (the controller stamps both streams on its clock).</summary>
    internal void TakeMachine(MachineStatus status)
    {
        lock (gate)
        {
            if (machine?.At is { } shown && status.At is { } at && at < shown) return;
            machine = status;
        }
    }

    /// <summary>
    /// The watch loop; a controller that stops answering while a session is followed (crash, power, network) is told
    /// in plain words with what to do, not as the transport's error.
    /// </summary>
    private async Task<FollowResult> WatchLoopAsync(string sessionId, CancellationToken ct)
    {
        try
        {
            return await WatchLoopCoreAsync(sessionId, ct).ConfigureAwait(false);
        }
        catch (RpcException e) when (!ct.IsCancellationRequested && e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown && HasFollowed)
        {
            if (ReadsKeys) await ctx.Stderr.WriteAsync('\a').ConfigureAwait(false);
            throw new CliException(ExitCodes.Failure, ControllerLostText(CurrentId(sessionId) ?? sessionId, conn.Address, e));
        }
    }

    private bool HasFollowed
    {
        get
        {
            lock (gate) return session is not null;
        }
    }

    /// <summary>What the operator reads when the controller went away mid-follow: what it means, the hard-wired e-stop, and the way back.</summary>
    public static string ControllerLostText(string sessionId, Uri controller, RpcException e)
    {
        var how = CommandContext.IsConnectFailure(e) ? "it refuses connections"
            : e.Status.Detail.Contains("prematurely", StringComparison.OrdinalIgnoreCase) || e.Status.Detail.Contains("reading next message", StringComparison.OrdinalIgnoreCase)
                ? "its connection closed in the middle of the session"
                : "it no longer answers";
        // Only the loss of contact is known here, not its cause: the controller may be gone or only the network.
        return $"CONTACT WITH THE CONTROLLER LOST during session {sessionId}: {how} (it may have crashed, been killed or lost power, or the network failed). "
            + "Nothing supervises the machine from here: if the gantry still moves or the needle is in the skin, PRESS THE HARD-WIRED E-STOP. "
            + $"Once smp-controller runs again, every dot is known (a dot being placed is marked in doubt): smp session show {sessionId}, "
            + $"then smp session resolve, smp machine home and smp session resume {sessionId}. "
            + $"(controller {CommandContext.Display(controller)}: {e.StatusCode}, {e.Status.Detail})";
    }

    private async Task<FollowResult> WatchLoopCoreAsync(string sessionId, CancellationToken ct)
    {
        var emptyStreams = 0;
        while (true)
        {
            var gotEvent = false;
            try
            {
                Session? stoppedSession = null;
                using (var call = conn.Sessions.Watch(new WatchSessionRequest { SessionId = sessionId }, cancellationToken: ct))
                {
                    while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
                    {
                        gotEvent = true;
                        var ended = Apply(call.ResponseStream.Current);
                        refresh();
                        if (ended is null) continue;
                        if (!OffersResume(ended)) return new FollowResult(ended, false, estopSent);
                        stoppedSession = ended;
                        break;
                    }
                }
                if (stoppedSession is not null)
                {
                    if (!await WaitWhileStoppedAsync(stoppedSession.Id, ct).ConfigureAwait(false)) return Detached(sessionId);
                    sessionId = stoppedSession.Id;
                    emptyStreams = 0;
                    continue;
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
            {
                return Detached(sessionId);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return Detached(sessionId);
            }
            catch (RpcException e) when (CommandContext.IsStoreUnavailable(e) && !ct.IsCancellationRequested)
            {
                // The controller answers, its record store does not: say so (what is shown was read before), and watch again.
                if (!await WaitForStoreAsync(e, ct).ConfigureAwait(false)) return Detached(sessionId);
                emptyStreams = 0;
                continue;
            }

            // The controller ended the stream: ask where the session stands and watch again if it goes on.
            var id = CurrentId(sessionId);
            if (string.IsNullOrEmpty(id)) throw new CliException(ExitCodes.Failure, "the controller ended the watch without sending a session (no current session?)");
            Session fresh;
            try
            {
                fresh = await conn.Sessions.GetAsync(new SessionRef { SessionId = id }, deadline: conn.Deadline(), cancellationToken: ct).ConfigureAwait(false);
            }
            catch (RpcException e) when (CommandContext.IsStoreUnavailable(e) && !ct.IsCancellationRequested)
            {
                if (!await WaitForStoreAsync(e, ct).ConfigureAwait(false)) return Detached(sessionId);
                sessionId = id;
                continue;
            }
            var endedNow = Apply(new SessionEvent { Session = fresh });
            refresh();
            if (endedNow is not null) return new FollowResult(endedNow, false, estopSent);
            emptyStreams = gotEvent ? 0 : emptyStreams + 1;
            if (emptyStreams >= 3)
            {
                throw new CliException(ExitCodes.Failure, $"the controller keeps ending the watch of session {id} (state {Formatting.StateName(fresh.State)})");
            }
            sessionId = id;
        }
    }

    /// <summary>How often the watch is tried again while the controller's record store cannot be read.</summary>
    public static readonly TimeSpan StoreRetryEvery = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The controller said its record store cannot be read: the view marks what it shows as last read at that time (it
    /// claims no state it cannot measure now), and the watch is tried again after <see cref="StoreRetryEvery"/>.
    /// Returns false when the operator stopped watching meanwhile.
    /// </summary>
    private async Task<bool> WaitForStoreAsync(RpcException e, CancellationToken ct)
    {
        var first = false;
        lock (gate)
        {
            if (storeUnreachable is null)
            {
                first = true;
                storeUnreachableSince = ctx.Host.Time.GetLocalNow();
            }
            storeUnreachable = e.Status.Detail;
        }
        refresh();
        if (first && !options.LiveView) await ctx.Stderr.WriteLineAsync(SessionView.StoreUnreachableText(e.Status.Detail, storeUnreachableSince)).ConfigureAwait(false);
        try
        {
            await Task.Delay(StoreRetryEvery, ctx.Host.Time, ct).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return false;
        }
    }

    private FollowResult Detached(string sessionId)
    {
        Session? last;
        lock (gate) last = session;
        return new FollowResult(last ?? new Session { Id = CurrentId(sessionId) ?? "" }, true, estopSent);
    }

    /// <summary>A stopped session this view keeps showing with a resume key (see <see cref="FollowOptions.OfferResume"/>).</summary>
    private bool OffersResume(Session s) =>
        options.OfferResume && ReadsKeys && !string.IsNullOrEmpty(options.ConsoleId) && IsResumableStop(s.State);

    /// <summary>FAULTED and EMERGENCY_STOPPED end a run, not the session: once the way is clear it can be resumed.</summary>
    public static bool IsResumableStop(SessionState state) => state is SessionState.Faulted or SessionState.EmergencyStopped;

    /// <summary>
    /// While the session stays FAULTED or EMERGENCY_STOPPED: measures, every <see cref="StoppedPollEvery"/>, the session,
    /// the machine and what would refuse a resume from this console, and shows it. Returns true once the session left the
    /// stop (resumed from here or elsewhere, aborted, continued in a new session): watching goes on; false when the
    /// operator stopped watching.
    /// </summary>
    private async Task<bool> WaitWhileStoppedAsync(string sessionId, CancellationToken ct)
    {
        stopped = true;
        refresh();
        try
        {
            while (true)
            {
                try
                {
                    var s = await conn.Sessions.GetAsync(new SessionRef { SessionId = sessionId }, deadline: conn.Deadline(), cancellationToken: ct).ConfigureAwait(false);
                    var start = await conn.Sessions.CheckStartAsync(new CheckStartRequest { ConsoleId = options.ConsoleId ?? "" }, deadline: conn.Deadline(), cancellationToken: ct).ConfigureAwait(false);
                    var m = await conn.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: conn.Deadline(), cancellationToken: ct).ConfigureAwait(false);
                    lock (gate)
                    {
                        session = s;
                        machine = m;
                        readiness = ResumeReadiness.Of(s, start);
                    }
                    refresh();
                    if (!IsResumableStop(s.State)) return true;
                }
                catch (RpcException e) when (!ct.IsCancellationRequested)
                {
                    lock (gate) readiness = new ResumeReadiness(false, "cannot tell: " + CommandContext.DescribeRpcError(e, conn.Address));
                    refresh();
                }
                await Task.Delay(StoppedPollEvery, ctx.Host.Time, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return false;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
        {
            return false;
        }
        finally
        {
            stopped = false;
            lock (gate) readiness = null;
        }
    }

    /// <summary>
    /// After the watch: the answers to this console's e-stops, the end of a latched stop sequence, then the session,
    /// machine and safety state read once more. Never throws for an unreachable controller: what could not be read
    /// is said so (<see cref="FinalState.Problem"/>), not replaced by what was last seen.
    /// </summary>
    private async Task<FollowResult> SettleAsync(FollowResult watched, string sessionId)
    {
        // An e-stop pressed while settling (keys stay live) is answered and measured too: settle again after it.
        var result = watched;
        for (var pass = 0; pass < 3; pass++)
        {
            int sent;
            lock (gate) sent = emergencyStops.Count;
            result = await SettleOnceAsync(result, sessionId).ConfigureAwait(false);
            lock (gate)
            {
                if (emergencyStops.Count == sent) break;
            }
        }
        return result;
    }

    private async Task<FollowResult> SettleOnceAsync(FollowResult watched, string sessionId)
    {
        await WaitForEmergencyStopsAsync().ConfigureAwait(false);
        var problems = new List<string>();
        var (safetyNow, safetyError) = await StopSequence.TryReadAsync(conn).ConfigureAwait(false);
        if (safetyNow is { EstopLatched: true } && !StopSequence.IsOver(safetyNow))
        {
            const string waiting = "EMERGENCY STOP latched: waiting for the controller to finish the stop sequence…";
            SetNotice(waiting);
            if (!options.LiveView) await ctx.Stderr.WriteLineAsync(waiting).ConfigureAwait(false);
            (safetyNow, safetyError) = await StopSequence.WaitUntilOverAsync(conn, ctx.Host.Time, StopSequence.FinishTimeout, safetyNow).ConfigureAwait(false);
        }
        if (safetyNow is null) problems.Add("safety status: " + safetyError);

        MachineStatus? machineNow = null;
        try
        {
            machineNow = await conn.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: conn.Deadline(FinalReadTimeout)).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            problems.Add("machine status: " + CommandContext.DescribeRpcError(e, conn.Address));
        }

        var sessionNow = watched.Session;
        var id = string.IsNullOrEmpty(watched.Session.Id) ? CurrentId(sessionId) : watched.Session.Id;
        if (!string.IsNullOrEmpty(id))
        {
            try
            {
                sessionNow = await conn.Sessions.GetAsync(new SessionRef { SessionId = id }, deadline: conn.Deadline(FinalReadTimeout)).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                problems.Add("session: " + CommandContext.DescribeRpcError(e, conn.Address));
            }
        }

        StopVerdict? verdict;
        bool held;
        lock (gate)
        {
            session = sessionNow;
            final = new FinalState(machineNow, safetyNow, problems.Count == 0 ? null : string.Join("; ", problems));
            verdict = emergencyStopVerdict;
            held = heldForOperator;
        }
        refresh();
        return watched with { Session = sessionNow, EmergencyStopSent = estopSent, Final = final, EmergencyStop = verdict, HeldForOperator = held };
    }

    /// <summary>Waits (bounded) until every e-stop this console sent has its answer, including ones sent meanwhile.</summary>
    private async Task WaitForEmergencyStopsAsync()
    {
        var start = ctx.Host.Time.GetTimestamp();
        while (true)
        {
            Task[] pending;
            lock (gate) pending = [.. emergencyStops.Where(t => !t.IsCompleted)];
            if (pending.Length == 0) return;
            var left = EmergencyStopWait - ctx.Host.Time.GetElapsedTime(start);
            if (left <= TimeSpan.Zero) return;
            try
            {
                await Task.WhenAll(pending).WaitAsync(left, ctx.Host.Time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return; // the summary says the e-stop was not answered
            }
        }
    }

    private string? CurrentId(string requested)
    {
        lock (gate) return session?.Id is { Length: > 0 } id ? id : requested;
    }

    /// <summary>Takes an event in; returns the session when following ends with it (end state, or held with nobody at the keys).</summary>
    internal Session? Apply(SessionEvent ev)
    {
        lock (gate)
        {
            if (ev.Session is not null)
            {
                session = ev.Session;
                storeUnreachable = null; // read again: the record answers
            }
            if (ev.Machine is not null && (machine?.At is not { } shown || ev.Machine.At is not { } at || at >= shown)) machine = ev.Machine;
            if (!string.IsNullOrEmpty(ev.Message)) lastEvent = ev.Message;
            if (session is null) return null;
            RingBellWhenAttentionStarts(session);
            if (ExitCodes.IsEndState(session.State)) return session;
            if (!ReadsKeys && IsHeldForOperator(session))
            {
                heldForOperator = true;
                return session;
            }
            return null;
        }
    }

    /// <summary>The machine status the view shows now (tests).</summary>
    internal MachineStatus? ShownMachine
    {
        get
        {
            lock (gate) return machine;
        }
    }

    private bool needsAttention;

    // The record store's reason while the controller cannot read it (null when the last read worked), and since when.
    private string? storeUnreachable;
    private DateTimeOffset storeUnreachableSince;

    /// <summary>
    /// The terminal bell, once, as the session starts needing the operator (held, faulted, e-stopped), at the
    /// same moments as the controller's attention output (hardware/WIRING.md); only on a live view in a terminal.
    /// </summary>
    private void RingBellWhenAttentionStarts(Session s)
    {
        var now = s.State is SessionState.Faulted or SessionState.EmergencyStopped || IsHeldForOperator(s);
        if (now && !needsAttention && ReadsKeys) ctx.Stderr.Write('\a');
        needsAttention = now;
    }

    private SessionSnapshot? Snapshot()
    {
        lock (gate)
        {
            if (session is null) return null;
            if (final is not null)
            {
                return new SessionSnapshot(session, final.Machine, final.Safety, lastEvent, notice, KeysEnabled: false)
                {
                    Ended = true,
                    Problem = final.Problem,
                };
            }
            // The heartbeat's status is newer than this console's e-stop reply only once it changed after the reply.
            var heartbeat = options.Safety?.Invoke();
            var currentSafety = replySafety is not null && (heartbeat is null || ReferenceEquals(heartbeat, heartbeatAtReply))
                ? replySafety
                : heartbeat ?? replySafety;
            return new SessionSnapshot(session, machine, currentSafety, lastEvent, notice, ReadsKeys)
            {
                Resume = stopped ? readiness ?? new ResumeReadiness(false, "measuring…") : null,
                StoreUnreachable = storeUnreachable,
                StoreUnreachableSince = storeUnreachableSince,
            };
        }
    }

    private IRenderable RenderNow() => Snapshot() is { } s
        ? SessionView.Render(s)
        : new Markup("[grey]waiting for the controller…[/]  [bold]Ctrl+C = EMERGENCY STOP[/]");

    private void PrintProgressIfDue()
    {
        var s = Snapshot();
        if (s is null) return;
        var now = ctx.Host.Time.GetTimestamp();
        var changed = s.Session.State != lastPrintedState || s.Session.Reason != lastPrintedReason;
        if (!changed && ctx.Host.Time.GetElapsedTime(lastProgressTimestamp, now) < ProgressEvery) return;
        lastProgressTimestamp = now;
        lastPrintedState = s.Session.State;
        lastPrintedReason = s.Session.Reason;
        ctx.Stderr.WriteLine(SessionView.ProgressLine(s));
    }

    private void OnInterrupt()
    {
        var count = Interlocked.Increment(ref interrupts);
        SessionState? state;
        lock (gate) state = session?.State;
        var mayMove = state is null or SessionState.Running or SessionState.Pausing;
        if (options.InterruptAlwaysStops || (supervising && !stopped) || mayMove)
        {
            _ = EmergencyStopAsync("Ctrl+C");
            if (count >= 2)
            {
                SetNotice("second Ctrl+C: stopped watching (the e-stop was sent)");
                watchCts?.Cancel();
            }
        }
        else
        {
            SetNotice("stopped watching; the session is not moving");
            watchCts?.Cancel();
        }
    }

    private async Task KeyLoopAsync(IKeyInput keys, CancellationToken ct)
    {
        using var raw = keys.EnterRawMode();
        while (!ct.IsCancellationRequested)
        {
            while (keys.TryReadKey(out var key)) HandleKey(key);
            try
            {
                await Task.Delay(KeyPollEvery, ctx.Host.Time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>
    /// e, Esc, Ctrl+C → emergency stop at once; space → pause/resume. While a stopped session is shown with its resume
    /// offer, nothing moves: Ctrl+C and q stop watching, space and r resume (e and Esc stay the e-stop).
    /// </summary>
    internal void HandleKey(ConsoleKeyInfo key)
    {
        var ctrlC = key.KeyChar == '\u0003' || (key.Key == ConsoleKey.C && key.Modifiers.HasFlag(ConsoleModifiers.Control));
        if (stopped && (ctrlC || key.KeyChar is 'q' or 'Q'))
        {
            SetNotice("stopped watching; the session is not moving");
            watchCts?.Cancel();
        }
        else if (stopped && key.KeyChar is 'r' or 'R')
        {
            _ = TogglePauseAsync();
        }
        else if (ctrlC || key.Key == ConsoleKey.Escape || key.KeyChar is 'e' or 'E')
        {
            _ = EmergencyStopAsync(ctrlC ? "Ctrl+C" : key.Key == ConsoleKey.Escape ? "Esc key" : "e key");
            if (ctrlC && Interlocked.Increment(ref interrupts) >= 2) watchCts?.Cancel();
        }
        else if (key.Key == ConsoleKey.Spacebar)
        {
            _ = TogglePauseAsync();
        }
    }

    /// <summary>
    /// Sends the e-stop on the dedicated safety channel and reports the outcome without delay. The call is not tied
    /// to the watch: ending the session or the follow never cancels it, and following waits for its answer.
    /// </summary>
    internal Task EmergencyStopAsync(string how)
    {
        var task = SendEmergencyStopAsync(how);
        lock (gate) emergencyStops.Add(task);
        return task;
    }

    private async Task SendEmergencyStopAsync(string how)
    {
        estopSent = true;
        SetNotice($"EMERGENCY STOP sent ({how})…");
        if (!options.LiveView) await ctx.Stderr.WriteLineAsync($"EMERGENCY STOP ({how})").ConfigureAwait(false);
        StopVerdict verdict;
        try
        {
            var status = await conn.Safety.EmergencyStopAsync(
                new EmergencyStopRequest { Source = "smp console (" + how + ")", Reason = "operator pressed " + how },
                deadline: conn.Deadline(ControllerConnection.EmergencyStopTimeout)).ConfigureAwait(false);
            if (status.EstopLatched && !StopSequence.IsOver(status))
            {
                // The controller answers once its sequence is over; a partial answer is followed up, never shown as the end.
                var (later, _) = await StopSequence.WaitUntilOverAsync(conn, ctx.Host.Time, StopSequence.FinishTimeout, status).ConfigureAwait(false);
                status = later ?? status;
            }
            RecordReply(status);
            verdict = StopSequence.Verdict(status);
        }
        catch (RpcException e) when (NeverDelivered(e))
        {
            verdict = new StopVerdict($"E-STOP REQUEST FAILED ({CommandContext.DescribeRpcError(e, conn.Address)}): USE THE HARD-WIRED E-STOP", true);
        }
        catch (RpcException e)
        {
            // No answer (deadline, a dropped connection, ...): the request may well have stopped the machine. Say at
            // once what to do, then ask the controller what happened before calling it a failure.
            var error = CommandContext.DescribeRpcError(e, conn.Address);
            var unconfirmed = $"E-STOP NOT CONFIRMED ({error}): USE THE HARD-WIRED E-STOP; asking the controller whether it latched…";
            SetNotice(unconfirmed);
            await ctx.Stderr.WriteLineAsync(unconfirmed).ConfigureAwait(false);
            var (status, readError) = await StopSequence.WaitUntilOverAsync(conn, ctx.Host.Time, StopSequence.FinishTimeout).ConfigureAwait(false);
            if (status is null)
            {
                verdict = new StopVerdict($"E-STOP NOT CONFIRMED: no answer to the e-stop ({error}) and no safety status ({readError}): USE THE HARD-WIRED E-STOP", true);
            }
            else
            {
                RecordReply(status);
                var measured = StopSequence.Verdict(status);
                verdict = measured.Failed ? measured : measured with { Text = measured.Text + $" (read after the e-stop request itself got no answer: {error})" };
            }
        }
        lock (gate) emergencyStopVerdict = verdict;
        SetNotice(verdict.Text);
        if (!options.LiveView || verdict.Failed) await ctx.Stderr.WriteLineAsync(verdict.Text).ConfigureAwait(false);
    }

    private void RecordReply(SafetyStatus status)
    {
        lock (gate)
        {
            replySafety = status;
            heartbeatAtReply = options.Safety?.Invoke();
        }
    }

    /// <summary>A refused connection: the request never reached the controller, so it certainly did not stop anything.</summary>
    private static bool NeverDelivered(RpcException e)
    {
        if (e.StatusCode != StatusCode.Unavailable) return false;
        for (var x = e.Status.DebugException; x is not null; x = x.InnerException)
        {
            if (x is SocketException { SocketErrorCode: SocketError.ConnectionRefused }) return true;
        }
        return false;
    }

    private async Task TogglePauseAsync()
    {
        if (Interlocked.Exchange(ref pauseBusy, 1) == 1) return;
        try
        {
            Session? current;
            lock (gate) current = session;
            if (current is null) return;
            var reference = new SessionRef { SessionId = current.Id, ConsoleId = options.ConsoleId ?? "" };
            if (current.State is SessionState.Running or SessionState.Pausing)
            {
                SetNotice("pausing: the current dot is finished safely first…");
                await conn.Sessions.PauseAsync(reference, deadline: conn.Deadline()).ConfigureAwait(false);
            }
            else if (current.State == SessionState.Paused || (stopped && IsResumableStop(current.State)))
            {
                SetNotice("resuming…");
                var resumed = await conn.Sessions.ResumeAsync(reference, deadline: conn.Deadline()).ConfigureAwait(false);
                if (!string.IsNullOrEmpty(options.ConsoleId))
                {
                    // Resumed with this console's id: only its heartbeats keep the session going, so Ctrl+C is now an e-stop.
                    supervising = true;
                    SetNotice($"resumed ({Formatting.StateName(resumed.State)}): this console supervises the session");
                }
                else
                {
                    SetNotice($"resumed ({Formatting.StateName(resumed.State)})");
                }
            }
            else
            {
                SetNotice($"space: nothing to pause or resume while {Formatting.StateName(current.State)}");
            }
        }
        catch (RpcException e)
        {
            SetNotice("pause/resume refused: " + CommandContext.DescribeRpcError(e, conn.Address));
        }
        finally
        {
            Volatile.Write(ref pauseBusy, 0);
        }
    }

    private void SetNotice(string text)
    {
        lock (gate) notice = text;
        if (options.LiveView) refresh();
    }
}
