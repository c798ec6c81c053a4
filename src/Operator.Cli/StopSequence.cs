using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>What the console says about an emergency stop, and whether that is a failure the operator must act on.</summary>
/// <param name="Text">One line for the operator.</param>
/// <param name="Failed">True when the stop failed or could not be confirmed: the text then names the hard-wired e-stop.</param>
internal sealed record StopVerdict(string Text, bool Failed);

/// <summary>
/// The controller's e-stop sequence as the console sees it through SafetyService: latched at once, then
/// "feed-hold", "needle-off", "queue-flushed", "retracted" as the steps complete, or a stop error. Everything
/// here reads status the controller measured; nothing is inferred from the console's own requests.
/// </summary>
internal static class StopSequence
{
    /// <summary>The last step of a complete stop sequence (SafetyStatus.stop_steps).</summary>
    public const string LastStep = "retracted";

    /// <summary>How long the console waits for a stop sequence to finish before it says it could not confirm it.</summary>
    public static readonly TimeSpan FinishTimeout = TimeSpan.FromSeconds(20);

    private static readonly TimeSpan PollEvery = TimeSpan.FromMilliseconds(100);

    private static readonly TimeSpan StatusCallTimeout = TimeSpan.FromSeconds(3);

    /// <summary>True when the sequence ended: every step done (needle retracted), or a step failed.</summary>
    public static bool IsOver(SafetyStatus s) => !string.IsNullOrEmpty(s.StopError) || s.StopSteps.Contains(LastStep);

    /// <summary>"feed-hold, needle-off, queue-flushed, retracted", or "none".</summary>
    public static string Steps(SafetyStatus s) => s.StopSteps.Count == 0 ? "none" : string.Join(", ", s.StopSteps);

    /// <summary>"by smp console (e key): operator pressed e key".</summary>
    public static string Origin(SafetyStatus s) =>
        "by " + (string.IsNullOrEmpty(s.EstopSource) ? "?" : s.EstopSource) + (string.IsNullOrEmpty(s.EstopReason) ? "" : ": " + s.EstopReason);

    /// <summary>The operator's line for a safety status read after an e-stop.</summary>
    public static StopVerdict Verdict(SafetyStatus s)
    {
        if (!string.IsNullOrEmpty(s.StopError))
        {
            return new StopVerdict($"E-STOP INCOMPLETE after [{Steps(s)}]: {s.StopError}: USE THE HARD-WIRED E-STOP", true);
        }
        if (!s.EstopLatched) return new StopVerdict("E-STOP FAILED: the controller reports the latch clear: USE THE HARD-WIRED E-STOP", true);
        if (!IsOver(s))
        {
            return new StopVerdict($"EMERGENCY STOP latched, but the stop sequence is not confirmed finished (done: {Steps(s)}): USE THE HARD-WIRED E-STOP", true);
        }
        return new StopVerdict($"EMERGENCY STOP latched ({Steps(s)})", false);
    }

    /// <summary>GetSafetyStatus on the safety channel with a short deadline; null (and the reason) when it cannot be read.</summary>
    public static async Task<(SafetyStatus? Status, string? Error)> TryReadAsync(ControllerConnection conn)
    {
        try
        {
            return (await conn.Safety.GetSafetyStatusAsync(new GetSafetyStatusRequest(), deadline: conn.Deadline(StatusCallTimeout)).ConfigureAwait(false), null);
        }
        catch (RpcException e)
        {
            return (null, CommandContext.DescribeRpcError(e, conn.Address));
        }
    }

    /// <summary>
    /// Reads the safety status until a latched stop sequence is over (<see cref="IsOver"/>), the latch is clear, or
    /// <paramref name="timeout"/> passed; returns the last status read (null and the reason when none could be read).
    /// Not cancellable on purpose: the console must not stop looking because the session or the command ended.
    /// </summary>
    public static async Task<(SafetyStatus? Status, string? Error)> WaitUntilOverAsync(ControllerConnection conn, TimeProvider time, TimeSpan timeout, SafetyStatus? known = null)
    {
        var start = time.GetTimestamp();
        var last = known;
        string? error = null;
        while (true)
        {
            if (last is not null && (!last.EstopLatched || IsOver(last))) return (last, null);
            if (time.GetElapsedTime(start) > timeout) return (last, error ?? "the stop sequence did not finish in time");
            if (last is not null) await Task.Delay(PollEvery, time).ConfigureAwait(false);
            var (status, readError) = await TryReadAsync(conn).ConfigureAwait(false);
            if (status is not null)
            {
                last = status;
                error = null;
            }
            else
            {
                error = readError;
                // An unreachable controller will not become reachable by asking faster: give up on the first failure.
                if (last is null) return (null, readError);
            }
        }
    }
}
