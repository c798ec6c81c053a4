using System.Text;
using System.Text.Json.Nodes;
using OpenCvSharp;
using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli;
using SmpRobot.Tests.Cli;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Camera;

/// <summary><c>smp board print</c> and <c>smp camera preview</c> against the real controller host.</summary>
public sealed class CameraCliTests(CameraHosts hosts) : IClassFixture<CameraHosts>, IDisposable
{
    private readonly DirectoryInfo dir = Directory.CreateTempSubdirectory("smp-cam-cli-");

    public void Dispose() => dir.Delete(recursive: true);

    private string Out(string name) => Path.Combine(dir.FullName, name);

    private static JsonObject SingleJsonObject(string stdout)
    {
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        return JsonNode.Parse(lines[0])!.AsObject();
    }

    [Fact]
    public async Task Board_print_pdf_writes_the_page_and_says_how_to_print_and_check_it()
    {
        var file = Out("board.pdf");
        var (code, stdout, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Fixed.Args("board", "print", "head-charuco-5x4", "--pdf", file));

        Assert.True(code == ExitCodes.Success, stderr);
        Assert.StartsWith("%PDF-", Encoding.ASCII.GetString((await File.ReadAllBytesAsync(file))[..8]), StringComparison.Ordinal);
        Assert.Contains("board 30 x 24 mm", stdout, StringComparison.Ordinal);
        Assert.Contains("100 %", stdout, StringComparison.Ordinal);
        Assert.Contains("scale bar", stdout, StringComparison.Ordinal);
        Assert.Contains("30 mm", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Board_print_png_json_is_one_object_without_the_bytes_and_the_file_has_the_dpi_size()
    {
        var file = Out("board.png");
        var (code, stdout, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Fixed.Args("board", "print", "head-charuco-5x4", "--png", file, "--dpi", "300", "--json"));

        Assert.True(code == ExitCodes.Success, stderr);
        var obj = SingleJsonObject(stdout);
        Assert.False(obj.ContainsKey("data"));
        Assert.Equal(file, (string)obj["file"]!);
        Assert.Equal(300, (int)obj["dpi"]!);
        Assert.Equal(0, (int)obj["exitCode"]!);
        var png = await File.ReadAllBytesAsync(file);
        Assert.Equal(png.Length, (int)obj["bytes"]!);
        var size = PngImages.SizeOf(png);
        Assert.Equal((int)obj["widthPx"]!, size.Width);
        Assert.Equal((int)Math.Round((double)obj["pageWidthMm"]! * 300 / 25.4), size.Width);
        Assert.Equal((int)Math.Round((double)obj["pageHeightMm"]! * 300 / 25.4), size.Height);
    }

    [Theory]
    [InlineData("--pdf", 0)]
    [InlineData("--png", 300)]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1062", Justification = "xunit passes the InlineData strings, never null")]
    public async Task Board_print_renders_a_local_board_file_here_exactly_as_the_controller_would(string flag, int dpi)
    {
        var board = Out("mine.json");
        const string json = "{ \"name\": \"mine\", \"squaresX\": 4, \"squaresY\": 3, \"squareMm\": 8, \"markerMm\": 6 }";
        await File.WriteAllTextAsync(board, json);
        var file = Out("mine" + flag.Replace("--", ".", StringComparison.Ordinal));
        string[] args = dpi > 0 ? ["board", "print", board, flag, file, "--dpi", dpi.ToString(System.Globalization.CultureInfo.InvariantCulture), "--json"] : ["board", "print", board, flag, file, "--json"];
        var (code, stdout, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Fixed.Args(args));
        Assert.True(code == ExitCodes.Success, stderr);

        // The controller's reply for the same board text: the console's JSON is that reply, field for field, and the same bytes.
        var host = hosts.Fixed;
        var reply = await host.Camera.RenderBoardAsync(new RenderBoardRequest { BoardJson = json, Format = flag == "--pdf" ? BoardFormat.Pdf : BoardFormat.Png, Dpi = dpi },
            deadline: CameraHost.Deadline());
        var expected = JsonOutput.Message(reply);
        expected.Remove("data");
        var actual = SingleJsonObject(stdout);
        Assert.Equal(file, (string)actual["file"]!);
        Assert.Equal(reply.Data.Length, (int)actual["bytes"]!);
        foreach (var key in new[] { "file", "bytes", "exitCode" }) actual.Remove(key);
        Assert.Equal(expected.ToJsonString(), actual.ToJsonString());
        Assert.Equal(reply.Data.ToByteArray(), await File.ReadAllBytesAsync(file));
    }

    [Fact]
    public async Task Board_print_of_an_unknown_board_exits_2_listing_the_boards_and_writes_nothing()
    {
        var file = Out("x.pdf");
        var (code, stdout, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Fixed.Args("board", "print", "no-such-board", "--pdf", file, "--json"));

        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("unknown board 'no-such-board'", stderr, StringComparison.Ordinal);
        Assert.Contains("available boards: head-charuco-5x4", stderr, StringComparison.Ordinal);
        Assert.Equal("InvalidArgument", (string)SingleJsonObject(stdout)["status"]!);
        Assert.False(File.Exists(file));
    }

    [Theory]
    [InlineData("missing-folder/board.pdf", "does not exist")]
    [InlineData("", "is a folder")]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1062", Justification = "xunit passes the InlineData strings, never null")]
    public async Task Board_print_to_a_path_that_cannot_be_written_exits_2(string relative, string expected)
    {
        var path = relative.Length == 0 ? dir.FullName : Out(relative);
        var (code, _, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Fixed.Args("board", "print", "head-charuco-5x4", "--pdf", path));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("exactly one of --png FILE or --pdf FILE", "board", "print", "head-charuco-5x4")]
    [InlineData("exactly one of --png FILE or --pdf FILE", "board", "print", "head-charuco-5x4", "--png", "a.png", "--pdf", "a.pdf")]
    [InlineData("--dpi applies to --png only", "board", "print", "head-charuco-5x4", "--pdf", "a.pdf", "--dpi", "300")]
    [InlineData("--dpi must be a positive number", "board", "print", "head-charuco-5x4", "--png", "a.png", "--dpi", "0")]
    [InlineData("--png", "camera", "preview")]
    public async Task Bad_usage_exits_2_before_calling_the_controller(string expected, params string[] args)
    {
        var (code, _, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), args);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Board_print_with_a_dpi_out_of_range_exits_2_with_the_range()
    {
        var (code, _, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Fixed.Args("board", "print", "head-charuco-5x4", "--png", Out("b.png"), "--dpi", "5000"));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("150..2400", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Camera_preview_saves_the_frame_and_prints_the_tracking_snapshot()
    {
        var file = Out("preview.png");
        var (code, stdout, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Tracked.Args("camera", "preview", "--png", file));

        Assert.True(code == ExitCodes.Success, stderr);
        using (var image = Cv2.ImRead(file, ImreadModes.Color)) Assert.Equal(new Size(1280, 720), image.Size());
        Assert.Contains("Camera    tracked:synthetic:still", stdout, StringComparison.Ordinal);
        Assert.Contains("Board     found: ", stdout, StringComparison.Ordinal);
        Assert.Contains("reprojection", stdout, StringComparison.Ordinal);
        Assert.Contains("1 processed, 0 lost, 0 jerks", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Camera_preview_json_is_one_object_with_the_snapshot_and_no_picture_bytes()
    {
        var file = Out("preview.png");
        var (code, stdout, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Tracked.Args("camera", "preview", "--png", file, "--json"));

        Assert.True(code == ExitCodes.Success, stderr);
        var obj = SingleJsonObject(stdout);
        Assert.False(obj.ContainsKey("png"));
        Assert.True((bool)obj["boardFound"]!);
        Assert.True((int)obj["markersSeen"]! > 0);
        Assert.True(obj.ContainsKey("reprojectionErrorPx"));
        Assert.True(obj.ContainsKey("frameAgeMs"));
        Assert.Equal(new FileInfo(file).Length, (long)obj["bytes"]!);
        Assert.Equal(0, (int)obj["exitCode"]!);
    }

    [Fact]
    public async Task Camera_preview_without_a_camera_exits_1_saying_so_and_writes_nothing()
    {
        var file = Out("none.png");
        var (code, _, stderr) = await CliRunner.RunAsync(CliRunner.IsolatedHost(), hosts.Fixed.Args("camera", "preview", "--png", file));

        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("smp: the controller has no camera", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(file));
    }
}
