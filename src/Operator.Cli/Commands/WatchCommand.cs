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
            + "watching. space = pause/resume. Exit 0 COMPLETED or stopped watching, 3 EMERGENCY_STOPPED/ABORTED, 1 FAULTED.")
        {
            session,
            noUi,
        };
        app.Bind(command, async (ctx, parse, ct) =>
        {
            using var conn = ctx.Connect();
            // Warm the safety channel before anything can need it.
            await conn.Safety.GetSafetyStatusAsync(new Contracts.V1.GetSafetyStatusRequest(), deadline: conn.Deadline(), cancellationToken: ct);
            var follower = new SessionFollower(ctx, conn, new FollowOptions(ctx.CanUseLiveView(parse.GetValue(noUi)), InterruptAlwaysStops: false));
            var result = await follower.FollowAsync(parse.GetValue(session) ?? "", ct);
            return RunCommand.WriteSummary(ctx, result);
        });
        return command;
    }
}
