using SmpRobot.Controller.Gantry.Simulation;

namespace SmpRobot.Tests.Simulation;

/// <summary>Waiting for the simulator's state without polling: each change it makes wakes the waiter (<see cref="SimulatedGantry.NextChange"/>).</summary>
internal static class SimulatorWaits
{
    /// <summary>Completes once <paramref name="condition"/> holds; TimeoutException naming <paramref name="what"/> after <paramref name="timeout"/> of wall time.</summary>
    public static async Task UntilAsync(this SimulatedGantry gantry, Func<SimulatedGantry, bool> condition, string what, TimeSpan timeout)
    {
        using var bound = new CancellationTokenSource(timeout);
        while (true)
        {
            var next = gantry.NextChange; // before the check: a change after it completes this task
            if (condition(gantry)) return;
            try
            {
                await next.WaitAsync(bound.Token);
            }
            catch (OperationCanceledException) when (bound.IsCancellationRequested)
            {
                throw new TimeoutException($"the simulator did not reach '{what}' within {timeout.TotalSeconds} s (state {gantry.State})");
            }
        }
    }
}
