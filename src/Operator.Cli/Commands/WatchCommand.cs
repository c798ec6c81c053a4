using System.CommandLine;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp watch [SESSION]</c>: live view of a session until it ends or Ctrl+C.</summary>
internal static class WatchCommand
{
    public static Command Build(CliCommands app)
    {
        var session = new Argument<string>("SESSION")
        {
            Description = "Session id (default: the current session)",
            Arity = ArgumentArity.ZeroOrOne,
            DefaultValueFactory = _ => "",
        };
        var noUi = new Option<bool>("--no-ui") { Description = "No live view: a progress line on stderr every ~2 s" };
        var command = new Command("watch", "Watch a session live until it ends. The operator is supervising: while the "
            + "session is RUNNING (or pausing), e / Esc / Ctrl+C is an EMERGENCY STOP, not just 'quit'; otherwise Ctrl+C stops "
            + "watching. space = pause/resume. In a terminal, a FAULTED or EMERGENCY_STOPPED session stays on screen with what "
            + "still stands in the way of a resume (dots in doubt, the e-stop latch, homing, ...); once nothing does, space "
            + "resumes it with this console supervising (operator heartbeat), as smp session resume does; q stops watching. "
            + "Exit 0 COMPLETED or stopped watching, 3 EMERGENCY_STOPPED/ABORTED, 1 FAULTED.")
        {
            session,
            noUi,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            // Warm the safety channel before anything can need it.
            await conn.Safety.GetSafetyStatusAsync(new Contracts.V1.GetSafetyStatusRequest(), deadline: conn.Deadline(), cancellationToken: ct);
            var live = ctx.CanUseLiveView(parse.GetValue(noUi));
            if (!live || ctx.Host.Keys is null)
            {
                var plain = await new SessionFollower(ctx, conn, new FollowOptions(live, InterruptAlwaysStops: false)).FollowAsync(parse.GetValue(session) ?? "", ct);
                if (SessionFollower.IsResumableStop(plain.Session.State) && !plain.Detached)
                {
                    ctx.Info($"to go on: smp session resume {plain.Session.Id} (that console supervises), or smp watch {plain.Session.Id} in a terminal and press space");
                }
                return RunCommand.WriteSummary(ctx, plain);
            }
            // With keys this console may become the supervising one (space on a paused or stopped session): its
            // heartbeat runs from the start, and only a session resumed from here counts its beats.
            await using var heartbeat = OperatorHeartbeat.Start(conn.Safety, ctx.Host.OperatorName, ctx.Host.Time, ct);
            var follower = new SessionFollower(ctx, conn, new FollowOptions(true, InterruptAlwaysStops: false, () => heartbeat.Latest, heartbeat.ConsoleId, OfferResume: true));
            var result = await follower.FollowAsync(parse.GetValue(session) ?? "", ct);
            if (heartbeat.Failure is { } failure) ctx.Info("note: the operator heartbeat failed while watching: " + failure.Message);
            return RunCommand.WriteSummary(ctx, result);
        });
        return command;
    }
}
