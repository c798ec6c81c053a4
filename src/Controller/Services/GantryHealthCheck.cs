using Microsoft.Extensions.Diagnostics.HealthChecks;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Safety;

namespace SmpRobot.Controller.Services;

/// <summary>
/// grpc.health.v1 for the controller: Healthy only when the gantry is connected, its settings match
/// the profile, it is homed and the e-stop is clear; Degraded when it is connected but cannot run a
/// session (not homed, settings differ, e-stop latched); Unhealthy when the link is down. The
/// description says which.
/// </summary>
internal sealed class GantryHealthCheck(GantryConnection gantry, SafetySupervisor safety) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!gantry.IsConnected)
        {
            var why = gantry.LastAlarm.Length > 0 ? ": " + gantry.LastAlarm : "";
            return Task.FromResult(HealthCheckResult.Unhealthy($"gantry {gantry.Description} is not connected{why}"));
        }
        var problems = new List<string>();
        if (safety.IsLatched) problems.Add("the emergency stop is latched");
        if (!gantry.IsHomed) problems.Add("the machine is not homed");
        if (gantry.SettingsMismatch is { } settings) problems.Add(settings);
        return Task.FromResult(problems.Count == 0
            ? HealthCheckResult.Healthy($"gantry {gantry.Description} connected and homed")
            : HealthCheckResult.Degraded(string.Join("; ", problems)));
    }
}
