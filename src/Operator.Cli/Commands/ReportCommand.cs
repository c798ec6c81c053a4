using System.CommandLine;
using System.Text.Json.Nodes;
using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp report SESSION --pdf FILE</c> and <c>smp report treatment ID --pdf FILE</c>: the controller's PDF reports.</summary>
internal static class ReportCommand
{
    /// <summary>Writing a report of a whole-scalp session draws tens of thousands of dots: seconds.</summary>
    private static readonly TimeSpan ReportTimeout = TimeSpan.FromMinutes(3);

    public static Command Build(CliCommands app)
    {
        var session = new Argument<string>("SESSION") { Description = "Session id (smp sessions)" };
        var (pdf, force) = Options();
        var command = new Command("report", "Write a session's PDF report: the design and the plan, placed vs planned, density, placement and depth errors, "
            + "holds and e-stops on a timeline, the calibration and surface registration used, who operated, the audit extract")
        {
            session, pdf, force,
        };
        app.Bind(command, (ctx, parse, ct) => WriteAsync(ctx, parse.GetValue(pdf)!, parse.GetValue(force),
            (conn, token) => conn.Treatments.SessionReport(new SessionReportRequest { SessionId = parse.GetValue(session)! }, deadline: conn.Deadline(ReportTimeout), cancellationToken: token),
            "session " + parse.GetValue(session), ct));

        var treatmentId = new Argument<string>("TREATMENT") { Description = "Treatment id (smp treatment list)" };
        var (tpdf, tforce) = Options();
        var treatment = new Command("treatment", "Write a treatment's PDF report: every session, the cumulative density, dots by session, touch-ups") { treatmentId, tpdf, tforce };
        app.Bind(treatment, (ctx, parse, ct) => WriteAsync(ctx, parse.GetValue(tpdf)!, parse.GetValue(tforce),
            (conn, token) => conn.Treatments.TreatmentReport(new TreatmentRef { TreatmentId = parse.GetValue(treatmentId)! }, deadline: conn.Deadline(ReportTimeout), cancellationToken: token),
            "treatment " + parse.GetValue(treatmentId), ct));
        command.Subcommands.Add(treatment);
        return command;
    }

    private static (Option<string> Pdf, Option<bool> Force) Options() =>
        (new Option<string>("--pdf") { Description = "PDF file to write", Required = true, HelpName = "FILE" },
         new Option<bool>("--force") { Description = "Replace the file if it exists" });

    private static async Task<int> WriteAsync(CommandContext ctx, string path, bool force, Func<ControllerConnection, CancellationToken, AsyncServerStreamingCall<ReportChunk>> call, string what, CancellationToken ct)
    {
        var target = Path.GetFullPath(path);
        if (File.Exists(target) && !force) throw new CliException(ExitCodes.Usage, $"{target} exists: give another file or --force (nothing was written)");
        var folder = Path.GetDirectoryName(target)!;
        if (!Directory.Exists(folder)) throw new CliException(ExitCodes.Usage, $"the folder {folder} does not exist (nothing was written)");
        using var conn = ctx.Connect();
        ctx.Info($"writing the report of {what}…");
        // Written beside and moved into place: an interrupted report never leaves half a PDF under the name asked for.
        var partial = target + ".partial";
        long bytes = 0;
        var complete = false;
        try
        {
            await using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                using var stream = call(conn, ct);
                while (await stream.ResponseStream.MoveNext(ct))
                {
                    var chunk = stream.ResponseStream.Current;
                    await file.WriteAsync(chunk.Data.Memory, ct);
                    bytes += chunk.Data.Length;
                    if (chunk.Last) complete = true;
                }
            }
            if (!complete || bytes == 0) throw new CliException(ExitCodes.Failure, $"the controller ended the report of {what} before its end (nothing was written)");
            File.Move(partial, target, overwrite: true);
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
        ctx.Result($"wrote {target} ({bytes / 1024.0:0} KB): the report of {what}", new JsonObject { ["file"] = target, ["bytes"] = bytes, ["exitCode"] = ExitCodes.Success });
        return ExitCodes.Success;
    }
}
