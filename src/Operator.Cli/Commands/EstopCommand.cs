using System.CommandLine;
using System.Text;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp estop [--reset] [--reason TEXT]</c>.</summary>
internal static class EstopCommand
{
    public static Command Build(CliCommands app)
    {
        var reset = new Option<bool>("--reset") { Description = "Clear the latch instead (never restarts motion; resume the session explicitly)" };
        var reason = new Option<string?>("--reason") { Description = "Why (recorded in the audit log)", HelpName = "TEXT" };
        var command = new Command("estop", "EMERGENCY STOP: feed hold, needle off and retracted, session latched EMERGENCY_STOPPED. "
            + "Works from any terminal. With --reset, clears the latch. Prints the safety status; exit 0 on success.")
        {
            reset,
            reason,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            SafetyStatus status;
            if (parse.GetValue(reset))
            {
                status = await conn.Safety.ResetEmergencyStopAsync(new ResetEmergencyStopRequest { Source = "smp estop" },
                    deadline: conn.Deadline(), cancellationToken: ct);
            }
            else
            {
                try
                {
                    status = await conn.Safety.EmergencyStopAsync(new EmergencyStopRequest { Source = "smp estop", Reason = parse.GetValue(reason) ?? "" },
                        deadline: conn.Deadline(ControllerConnection.EmergencyStopTimeout), cancellationToken: ct);
                }
                catch (Grpc.Core.RpcException e) when (e.StatusCode is Grpc.Core.StatusCode.Unavailable or Grpc.Core.StatusCode.DeadlineExceeded)
                {
                    // Never leave the operator believing the machine stopped.
                    throw new CliException(ExitCodes.Failure, e.StatusCode == Grpc.Core.StatusCode.Unavailable
                        ? $"EMERGENCY STOP NOT SENT: the controller at {conn.Address} cannot be reached ({e.Status.Detail}): PRESS THE HARD-WIRED E-STOP"
                        : $"EMERGENCY STOP NOT CONFIRMED: the controller at {conn.Address} did not answer in time: PRESS THE HARD-WIRED E-STOP");
                }
            }
            var exitCode = string.IsNullOrEmpty(status.StopError) ? ExitCodes.Success : ExitCodes.Failure;
            var json = JsonOutput.Message(status);
            json["exitCode"] = exitCode;
            ctx.Result(Describe(status), json);
            if (exitCode != ExitCodes.Success) ctx.Info("E-STOP INCOMPLETE: " + status.StopError + ": USE THE HARD-WIRED E-STOP");
            return exitCode;
        });
        return command;
    }

    /// <summary>Human text of a safety status.</summary>
    public static string Describe(SafetyStatus s)
    {
        var sb = new StringBuilder();
        sb.Append("E-stop    ").AppendLine(s.EstopLatched ? "LATCHED" : "clear");
        if (s.EstopLatched || !string.IsNullOrEmpty(s.EstopSource))
        {
            sb.Append("Source    ").AppendLine(string.IsNullOrEmpty(s.EstopSource) ? "-" : s.EstopSource);
            sb.Append("Reason    ").AppendLine(string.IsNullOrEmpty(s.EstopReason) ? "-" : s.EstopReason);
            if (s.EstopAt is not null) sb.Append("At        ").AppendLine(s.EstopAt.ToDateTimeOffset().ToString("u", System.Globalization.CultureInfo.InvariantCulture));
        }
        sb.Append("Steps     ").AppendLine(s.StopSteps.Count == 0 ? "-" : string.Join(", ", s.StopSteps));
        if (!string.IsNullOrEmpty(s.StopError)) sb.Append("STOP ERROR ").Append(s.StopError).AppendLine(": USE THE HARD-WIRED E-STOP");
        sb.Append("Operator  ").Append(s.OperatorPresent ? "present" : "absent");
        return sb.ToString();
    }
}
