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
internal sealed record FollowOptions(bool LiveView, bool InterruptAlwaysStops, Func<SafetyStatus?>? Safety = null, string? ConsoleId = null);

/// <summary>Result of following a session.</summary>
/// <param name="Session">The last known session.</param>
/// <param name="Detached">True when the operator stopped watching before the session ended.</param>
/// <param name="EmergencyStopSent">True when this console sent an e-stop while following.</param>
internal sealed record FollowResult(Session Session, bool Detached, bool EmergencyStopSent = false)
{
    /// <summary>By the end state; a detached follow exits 3 after an e-stop, else 0 (the session goes on).</summary>
    public int ExitCode => ExitCodes.IsEndState(Session.State) || !Detached
        ? ExitCodes.ForSessionState(Session.State)
        : EmergencyStopSent ? ExitCodes.Stopped : ExitCodes.Success;
}

/// <summary>
/// Follows a session through SessionService.Watch until it reaches COMPLETED, ABORTED, EMERGENCY_STOPPED or FAULTED,
/// showing progress, and turns e / Esc / Ctrl+C into an immediate emergency stop on the safety channel.
/// </summary>
internal sealed class SessionFollower
{
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan KeyPollEvery = TimeSpan.FromMilliseconds(30);

    private readonly CommandContext ctx;
    private readonly ControllerConnection conn;
    private readonly FollowOptions options;
    private readonly Lock gate = new();
    private readonly Lock renderGate = new();
    private Session? session;
    private MachineStatus? machine;
    private SafetyStatus? safety;
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

    public SessionFollower(CommandContext ctx, ControllerConnection conn, FollowOptions options)
    {
        this.ctx = ctx;
        this.conn = conn;
        this.options = options;
    }

    /// <summary>Follows <paramref name="sessionId"/> (empty = the current session) to its end or until detached.</summary>
    public async Task<FollowResult> FollowAsync(string sessionId, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        watchCts = cts;
        using var subscription = ctx.Host.Interrupts?.Subscribe(OnInterrupt);
        if (!options.LiveView)
        {
            refresh = PrintProgressIfDue;
            return await WatchLoopAsync(sessionId, cts.Token).ConfigureAwait(false);
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
            try
            {
                result = await WatchLoopAsync(sessionId, cts.Token).ConfigureAwait(false);
            }
            finally
            {
                await keysCts.CancelAsync().ConfigureAwait(false);
                await keys.ConfigureAwait(false);
                refresh();
            }
        }).ConfigureAwait(false);
        return result!;
    }

    private async Task<FollowResult> WatchLoopAsync(string sessionId, CancellationToken ct)
    {
        var emptyStreams = 0;
        while (true)
        {
            var gotEvent = false;
            try
            {
                using var call = conn.Sessions.Watch(new WatchSessionRequest { SessionId = sessionId }, cancellationToken: ct);
                while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
                {
                    gotEvent = true;
                    var ended = Apply(call.ResponseStream.Current);
                    refresh();
                    if (ended is not null) return new FollowResult(ended, false, estopSent);
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && ct.IsCancellationRequested)
            {
                return await DetachedAsync(sessionId).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return await DetachedAsync(sessionId).ConfigureAwait(false);
            }

            // The controller ended the stream: ask where the session stands and watch again if it goes on.
            var id = CurrentId(sessionId);
            if (string.IsNullOrEmpty(id)) throw new CliException(ExitCodes.Failure, "the controller ended the watch without sending a session (no current session?)");
            var fresh = await conn.Sessions.GetAsync(new SessionRef { SessionId = id }, deadline: conn.Deadline(), cancellationToken: ct).ConfigureAwait(false);
            lock (gate) session = fresh;
            refresh();
            if (ExitCodes.IsEndState(fresh.State)) return new FollowResult(fresh, false, estopSent);
            emptyStreams = gotEvent ? 0 : emptyStreams + 1;
            if (emptyStreams >= 3)
            {
                throw new CliException(ExitCodes.Failure, $"the controller keeps ending the watch of session {id} (state {Formatting.StateName(fresh.State)})");
            }
            sessionId = id;
        }
    }

    private async Task<FollowResult> DetachedAsync(string sessionId)
    {
        var id = CurrentId(sessionId);
        Session? last;
        lock (gate) last = session;
        if (!string.IsNullOrEmpty(id))
        {
            try
            {
                last = await conn.Sessions.GetAsync(new SessionRef { SessionId = id }, deadline: conn.Deadline(TimeSpan.FromSeconds(3))).ConfigureAwait(false);
            }
            catch (RpcException)
            {
                // Keep the last snapshot; the summary says what we knew.
            }
        }
        return new FollowResult(last ?? new Session { Id = id ?? "" }, true, estopSent);
    }

    private string? CurrentId(string requested)
    {
        lock (gate) return session?.Id is { Length: > 0 } id ? id : requested;
    }

    /// <summary>Takes an event in; returns the session when it reached an end state.</summary>
    private Session? Apply(SessionEvent ev)
    {
        lock (gate)
        {
            if (ev.Session is not null) session = ev.Session;
            if (ev.Machine is not null) machine = ev.Machine;
            if (!string.IsNullOrEmpty(ev.Message)) lastEvent = ev.Message;
            return session is not null && ExitCodes.IsEndState(session.State) ? session : null;
        }
    }

    private SessionSnapshot? Snapshot()
    {
        lock (gate)
        {
            if (session is null) return null;
            var currentSafety = options.Safety?.Invoke() ?? safety;
            return new SessionSnapshot(session, machine, currentSafety, lastEvent, notice, options.LiveView && ctx.Host.Keys is not null);
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
        if (options.InterruptAlwaysStops || mayMove)
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

    /// <summary>e, Esc, Ctrl+C → emergency stop at once; space → pause/resume.</summary>
    internal void HandleKey(ConsoleKeyInfo key)
    {
        var ctrlC = key.KeyChar == '\u0003' || (key.Key == ConsoleKey.C && key.Modifiers.HasFlag(ConsoleModifiers.Control));
        if (ctrlC || key.Key == ConsoleKey.Escape || key.KeyChar is 'e' or 'E')
        {
            _ = EmergencyStopAsync(ctrlC ? "Ctrl+C" : key.Key == ConsoleKey.Escape ? "Esc key" : "e key");
            if (ctrlC && Interlocked.Increment(ref interrupts) >= 2) watchCts?.Cancel();
        }
        else if (key.Key == ConsoleKey.Spacebar)
        {
            _ = TogglePauseAsync();
        }
    }

    /// <summary>Sends the e-stop on the dedicated safety channel and reports the outcome without delay.</summary>
    internal async Task EmergencyStopAsync(string how)
    {
        estopSent = true;
        SetNotice($"EMERGENCY STOP sent ({how})…");
        if (!options.LiveView) ctx.Stderr.WriteLine($"EMERGENCY STOP ({how})");
        try
        {
            var status = await conn.Safety.EmergencyStopAsync(
                new EmergencyStopRequest { Source = "smp console (" + how + ")", Reason = "operator pressed " + how },
                deadline: conn.Deadline(ControllerConnection.EmergencyStopTimeout)).ConfigureAwait(false);
            lock (gate) safety = status;
            var text = string.IsNullOrEmpty(status.StopError)
                ? $"EMERGENCY STOP latched ({string.Join(", ", status.StopSteps)})"
                : $"E-STOP INCOMPLETE: {status.StopError}: USE THE HARD-WIRED E-STOP";
            SetNotice(text);
            if (!options.LiveView || !string.IsNullOrEmpty(status.StopError)) ctx.Stderr.WriteLine(text);
        }
        catch (RpcException e)
        {
            var text = $"E-STOP REQUEST FAILED ({CommandContext.DescribeRpcError(e, conn.Address)}): USE THE HARD-WIRED E-STOP";
            SetNotice(text);
            ctx.Stderr.WriteLine(text);
        }
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
            else if (current.State == SessionState.Paused)
            {
                SetNotice("resuming…");
                await conn.Sessions.ResumeAsync(reference, deadline: conn.Deadline()).ConfigureAwait(false);
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
