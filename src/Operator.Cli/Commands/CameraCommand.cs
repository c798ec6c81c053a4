using System.CommandLine;
using System.Globalization;
using System.Text;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli.Commands;

/// <summary><c>smp camera preview --png FILE</c>.</summary>
internal static class CameraCommand
{
    public static Command Build(CliCommands app)
    {
        var png = new Option<string>("--png") { Description = "Write the picture to FILE (PNG)", HelpName = "FILE", Required = true };
        var preview = new Command("preview", "Save the tracker's last camera frame with the detected markers, ChArUco corners and the "
            + "head frame's axes (X red, Y green, Z blue) drawn, so you can see what the tracker sees; prints what it made of the frame.")
        {
            png,
        };
        app.Bind(preview, async (ctx, parse, ct) =>
        {
            var path = parse.GetValue(png)!;
            OutputFile.Check(path);
            using var conn = ctx.Connect();
            var reply = await conn.Camera.GetPreviewAsync(new GetPreviewRequest(), deadline: conn.Deadline(), cancellationToken: ct);
            OutputFile.Write(path, reply.Png.Span);
            ctx.Result(Describe(reply, path), OutputFile.Json(reply, "png", path, reply.Png.Length));
            return ExitCodes.Success;
        });
        return new Command("camera", "The head-tracking camera") { preview };
    }

    /// <summary>Human text of a preview: the file written and the tracking snapshot.</summary>
    public static string Describe(CameraPreview p, string path)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("Wrote     ").Append(path).Append(" (").Append(p.WidthPx.ToString(inv)).Append(" x ").Append(p.HeightPx.ToString(inv)).Append(" px")
            .Append(p.Downscaled ? ", downscaled to fit a reply" : "").AppendLine(")");
        sb.Append("Camera    ").AppendLine(p.Camera);
        sb.Append("Intrinsics ").AppendLine(p.Intrinsics.Length == 0 ? "NONE: nothing is tracked (smp calibrate intrinsics, or smp-controller --intrinsics FILE)" : p.Intrinsics);
        sb.Append("Board     ").Append(p.BoardFound ? "found" : "NOT FOUND").Append(": ").Append(p.MarkersSeen.ToString(inv)).Append(" markers, ")
            .Append(p.CornersSeen.ToString(inv)).Append(" corners");
        if (p.HasReprojectionErrorPx) sb.Append(", reprojection ").Append(Formatting.Number(p.ReprojectionErrorPx, "0.00")).Append(" px");
        sb.AppendLine();
        if (p.CameraFromHead?.TranslationMm is { } t)
        {
            sb.Append("Pose      board at x ").Append(Formatting.Mm(t.XMm)).Append(" y ").Append(Formatting.Mm(t.YMm)).Append(" z ").Append(Formatting.Mm(t.ZMm)).AppendLine(" mm from the camera");
        }
        sb.Append("Quality   ").AppendLine(Formatting.Number(p.Quality, "0.00"));
        sb.Append("Head      ").AppendLine(p.HasHeadSpeedMmPerS ? Formatting.Number(p.HeadSpeedMmPerS, "0.0") + " mm/s" : "speed unknown (board not seen yet)");
        sb.Append("Frames    ").Append(p.FramesProcessed.ToString(inv)).Append(" processed, ").Append(p.FramesLost.ToString(inv)).Append(" lost, ")
            .Append(p.Jerks.ToString(inv)).Append(p.Jerks == 1 ? " jerk" : " jerks").Append("; last frame ").Append(Formatting.Number(p.FrameAgeMs, "0")).Append(" ms old");
        return sb.ToString();
    }
}
