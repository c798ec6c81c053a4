using System.Text;
using Grpc.Core;
using OpenCvSharp;
using SmpRobot.Contracts.V1;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Camera;

/// <summary>Hosts shared by the tests of one class: a fixed-head controller and one tracking a still synthetic head.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Maintainability", "CA1515", Justification = "the class fixture of public test classes (IClassFixture<CameraHosts>) must be as visible as they are")]
public sealed class CameraHosts : IAsyncLifetime
{
    internal CameraHost Fixed { get; private set; } = null!;

    internal CameraHost Tracked { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Fixed = await CameraHost.StartAsync();
        var source = CameraHost.StillTrackedSource();
        Assert.NotNull(source.ProcessNextFrame());
        Tracked = await CameraHost.StartAsync(source);
    }

    public async Task DisposeAsync()
    {
        await Fixed.DisposeAsync();
        await Tracked.DisposeAsync();
    }
}

/// <summary>smprobot.v1.CameraService through the real gRPC host.</summary>
public sealed class CameraServiceTests(CameraHosts hosts) : IClassFixture<CameraHosts>
{
    [Fact]
    public async Task Preview_is_the_trackers_last_frame_with_its_snapshot()
    {
        var host = hosts.Tracked;
        var reply = await host.Camera.GetPreviewAsync(new GetPreviewRequest(), deadline: CameraHost.Deadline());

        Assert.True(reply.Png.Length is > 1000 and <= 3584 * 1024);
        using var image = Cv2.ImDecode(reply.Png.ToByteArray(), ImreadModes.Color);
        Assert.Equal(new Size(1280, 720), image.Size());
        Assert.Equal(1280, reply.WidthPx);
        Assert.Equal(720, reply.HeightPx);
        Assert.False(reply.Downscaled);

        var snapshot = host.Tracked!.Snapshot()!;
        Assert.StartsWith("tracked:synthetic", reply.Camera, StringComparison.Ordinal);
        Assert.Equal(snapshot.Camera, reply.Camera);
        Assert.True(reply.BoardFound);
        Assert.Equal(snapshot.MarkersSeen, reply.MarkersSeen);
        Assert.True(reply.MarkersSeen >= 8, $"{reply.MarkersSeen} markers seen on a still, unoccluded board");
        Assert.Equal(snapshot.CornersSeen, reply.CornersSeen);
        Assert.True(reply.HasReprojectionErrorPx);
        Assert.Equal(snapshot.ReprojectionErrorPx, reply.ReprojectionErrorPx);
        Assert.True(reply.ReprojectionErrorPx < 1.0);
        Assert.Equal(snapshot.Quality, reply.Quality);
        Assert.Equal(1, reply.FramesProcessed);
        Assert.Equal(0, reply.FramesLost);
        Assert.Equal(0, reply.Jerks);
        Assert.True(reply.FrameAgeMs > 0 && reply.FrameAgeMs < 600_000, $"frame age {reply.FrameAgeMs} ms");
    }

    [Fact]
    public async Task Preview_without_a_camera_is_a_failed_precondition_that_says_so()
    {
        var host = hosts.Fixed;
        var e = await Assert.ThrowsAsync<RpcException>(() => host.Camera.GetPreviewAsync(new GetPreviewRequest(), deadline: CameraHost.Deadline()).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("no camera", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("fixed", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Preview_before_the_first_frame_is_a_failed_precondition_then_works_once_a_frame_is_in()
    {
        // The camera delivers its frame only when the gate opens (the host's tracking loop is waiting for it).
        using var gate = new SemaphoreSlim(0);
        var source = CameraHost.StillTrackedSource(gate);
        var tracked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        source.PoseUpdated += (_, _) => tracked.TrySetResult();
        await using var host = await CameraHost.StartAsync(source);
        var e = await Assert.ThrowsAsync<RpcException>(() => host.Camera.GetPreviewAsync(new GetPreviewRequest(), deadline: CameraHost.Deadline()).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("has not delivered a frame yet", e.Status.Detail, StringComparison.Ordinal);

        gate.Release();
        await tracked.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var reply = await host.Camera.GetPreviewAsync(new GetPreviewRequest(), deadline: CameraHost.Deadline());
        Assert.True(reply.BoardFound);
    }

    [Fact]
    public async Task RenderBoard_by_name_gives_a_true_scale_pdf_and_a_png_at_the_default_600_dpi()
    {
        var host = hosts.Fixed;
        var pdf = await host.Camera.RenderBoardAsync(new RenderBoardRequest { Name = "head-charuco-5x4", Format = BoardFormat.Pdf }, deadline: CameraHost.Deadline());
        Assert.Equal(BoardFormat.Pdf, pdf.Format);
        Assert.StartsWith("%PDF-", Encoding.ASCII.GetString(pdf.Data.Span[..8]), StringComparison.Ordinal);
        Assert.Equal("head-charuco-5x4", pdf.BoardName);
        Assert.Equal(30, pdf.BoardWidthMm, 9);
        Assert.Equal(24, pdf.BoardHeightMm, 9);
        Assert.Equal(30, pdf.ScaleBarMm, 9);
        Assert.Equal(0, pdf.Dpi);
        Assert.Contains("100 %", pdf.PrintNote, StringComparison.Ordinal);
        Assert.Contains("fit to page", pdf.PrintNote, StringComparison.Ordinal);
        Assert.Contains("30 mm", pdf.MeasureHint, StringComparison.Ordinal);
        Assert.Contains("DICT_4X4_50", pdf.BoardDescription, StringComparison.Ordinal);

        var png = await host.Camera.RenderBoardAsync(new RenderBoardRequest { Name = "head-charuco-5x4.json" }, deadline: CameraHost.Deadline());
        Assert.Equal(BoardFormat.Png, png.Format);
        Assert.Equal(600, png.Dpi);
        Assert.Equal(pdf.PageWidthMm, png.PageWidthMm, 9);
        Assert.Equal((int)Math.Round(png.PageWidthMm * 600 / 25.4), png.WidthPx);
        Assert.Equal((int)Math.Round(png.PageHeightMm * 600 / 25.4), png.HeightPx);
        var bytes = png.Data.ToByteArray();
        Assert.Equal(new Size(png.WidthPx, png.HeightPx), PngImages.SizeOf(bytes));
        Assert.Equal(600, PngImages.ReadDpi(bytes)!.Value, 0);
        Assert.Contains("600 dpi", png.PrintNote, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RenderBoard_from_board_text_uses_that_board()
    {
        var host = hosts.Fixed;
        const string json = "{ \"name\": \"tiny\", \"squaresX\": 3, \"squaresY\": 3, \"squareMm\": 10, \"markerMm\": 7, }";
        var reply = await host.Camera.RenderBoardAsync(new RenderBoardRequest { BoardJson = json, Format = BoardFormat.Png, Dpi = 300 }, deadline: CameraHost.Deadline());
        Assert.Equal("tiny", reply.BoardName);
        Assert.Equal(30, reply.BoardWidthMm, 9);
        Assert.Equal(300, reply.Dpi);
    }

    [Theory]
    [InlineData("nope", "unknown board 'nope'")]
    [InlineData("../profiles/sim", "unknown board")]
    [InlineData("", "give a board name")]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1062", Justification = "xunit passes the InlineData strings and the class fixture, never null")]
    public async Task RenderBoard_refuses_unknown_board_names_listing_the_available_ones(string name, string expected)
    {
        var host = hosts.Fixed;
        var request = name.Length == 0 ? new RenderBoardRequest() : new RenderBoardRequest { Name = name };
        var e = await Assert.ThrowsAsync<RpcException>(() => host.Camera.RenderBoardAsync(request, deadline: CameraHost.Deadline()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains(expected, e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("available boards: head-charuco-5x4", e.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ not json", "not valid")]
    [InlineData("{\"name\":\"x\",\"squaresX\":5,\"squaresY\":4,\"squareMm\":6,\"markerMm\":7}", "markerMm")]
    [InlineData("{\"name\":\"x\",\"dictionary\":\"DICT_LOL\",\"squaresX\":5,\"squaresY\":4,\"squareMm\":6,\"markerMm\":4}", "unknown marker dictionary")]
    public async Task RenderBoard_refuses_board_text_that_is_not_a_board(string json, string expected)
    {
        var host = hosts.Fixed;
        var e = await Assert.ThrowsAsync<RpcException>(() => host.Camera.RenderBoardAsync(new RenderBoardRequest { BoardJson = json }, deadline: CameraHost.Deadline()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains(expected, e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("available boards", e.Status.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(149)]
    [InlineData(2401)]
    public async Task RenderBoard_refuses_a_dpi_out_of_range(int dpi)
    {
        var host = hosts.Fixed;
        var e = await Assert.ThrowsAsync<RpcException>(() => host.Camera.RenderBoardAsync(new RenderBoardRequest { Name = "head-charuco-5x4", Dpi = dpi }, deadline: CameraHost.Deadline()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("150..2400", e.Status.Detail, StringComparison.Ordinal);
    }
}
