using System.Text.Json.Nodes;
using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// A long call that moves the machine outside a session (homing, a jog, a gantry calibration, a drift check).
/// An emergency stop flushes the firmware under such a call, which then fails with whatever the flush caused
/// ("gantry: flushed by soft reset", a refused motion line, …). That failure is not the story the operator must
/// read: after it, the console asks the safety status and, when the latch was set while the call ran, waits for
/// the stop sequence to finish and reports "emergency stop during WHAT" with the steps the controller reports
/// (exit 3). One place for every such call, so that keys during long calls (issue #15) can be added here.
/// </summary>
internal static class MotionCall
{
    private static readonly TimeSpan PreflightTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Runs <paramref name="call"/>; <paramref name="what"/> names it for the operator ("homing", "calibration",
    /// "the jog", "the drift check"). Throws <see cref="CliException"/> with exit 3 when an e-stop latched while it ran.
    /// </summary>
    public static async Task<T> RunAsync<T>(CommandContext ctx, ControllerConnection conn, string what, Func<Task<T>> call, CancellationToken ct)
    {
        // Also warms the safety channel. Latched before the call: the controller refuses it with its own message,
        // which is the truth; only a latch that appears during the call is "an emergency stop during" it.
        var before = await conn.Safety.GetSafetyStatusAsync(new GetSafetyStatusRequest(), deadline: conn.Deadline(PreflightTimeout), cancellationToken: ct).ConfigureAwait(false);
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (RpcException e) when (!before.EstopLatched)
        {
            var (after, _) = await StopSequence.TryReadAsync(conn).ConfigureAwait(false);
            if (after is not { EstopLatched: true }) throw;
            throw await StoppedDuringAsync(ctx, conn, what, after, e).ConfigureAwait(false);
        }
    }

    /// <summary>The exit-3 error for an e-stop during <paramref name="what"/>, once the stop sequence is over (bounded).</summary>
    private static async Task<CliException> StoppedDuringAsync(CommandContext ctx, ControllerConnection conn, string what, SafetyStatus latched, RpcException failure)
    {
        if (!StopSequence.IsOver(latched)) ctx.Info($"emergency stop during {what}: waiting for the controller to finish the stop sequence…");
        var (status, _) = await StopSequence.WaitUntilOverAsync(conn, ctx.Host.Time, StopSequence.FinishTimeout, latched).ConfigureAwait(false);
        status ??= latched;
        var verdict = StopSequence.Verdict(status);
        MachineStatus? machine = null;
        try
        {
            machine = await conn.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: conn.Deadline(TimeSpan.FromSeconds(3))).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            // The stop is reported without the machine line; nothing is claimed about it.
        }
        var message = $"emergency stop during {what} ({StopSequence.Origin(status)}); stop steps: {StopSequence.Steps(status)}";
        if (verdict.Failed) message += "; " + verdict.Text;
        if (machine is not null)
        {
            message += $"; needle {(machine.NeedleOn ? "ON" : "off")}, gantry {(string.IsNullOrEmpty(machine.State) ? "?" : machine.State)}{(machine.Homed ? "" : ", NOT homed (home again after 'smp estop --reset')")}";
        }
        var details = new JsonObject
        {
            ["during"] = what,
            ["safety"] = JsonOutput.Message(status),
            ["callError"] = CommandContext.DescribeRpcError(failure, conn.Address),
        };
        if (machine is not null) details["machine"] = JsonOutput.Message(machine);
        return new CliException(ExitCodes.Stopped, message, details, failure);
    }
}
