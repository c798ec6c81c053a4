using OpenCvSharp;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Vision;

public sealed class MarkerBoardTests
{
    [Fact]
    public void Loads_the_head_board_from_hardware_boards()
    {
        using var board = MarkerBoard.Load(Path.Combine(VisionTestSupport.RepoRoot(), "hardware", "boards", "head-charuco-5x4.json"));
        Assert.Equal(30.0, board.WidthMm, 9);
        Assert.Equal(24.0, board.HeightMm, 9);
        Assert.Equal(12, board.CornerCount);
        Assert.Equal(10, board.MarkerCount);
        // H is centred on the board, Y up: corner 0 is the top-left inner corner.
        Assert.Equal(new Vec3(-9, 6, 0), board.CornerInHead(0));
        Assert.Equal(new Vec3(9, -6, 0), board.CornerInHead(11));
    }

    [Theory]
    [InlineData("DICT_9X9_50", 5, 4, 6.0, 4.5)]
    [InlineData("DICT_4X4_50", 5, 4, 6.0, 6.5)]
    [InlineData("DICT_4X4_50", 1, 4, 6.0, 4.5)]
    [InlineData("DICT_4X4_50", 12, 12, 6.0, 4.5)] // 72 markers do not fit a 50-marker dictionary
    public void Refuses_unusable_boards(string dictionary, int squaresX, int squaresY, double squareMm, double markerMm)
    {
        var spec = new MarkerBoardSpec { Name = "bad", Dictionary = dictionary, SquaresX = squaresX, SquaresY = squaresY, SquareMm = squareMm, MarkerMm = markerMm };
        Assert.Throws<ArgumentException>(() => new MarkerBoard(spec));
    }

    [Fact]
    public void Refuses_custom_marker_ids()
    {
        var spec = new MarkerBoardSpec { Name = "ids", SquaresX = 5, SquaresY = 4, SquareMm = 6, MarkerMm = 4.5, Ids = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19] };
        Assert.Throws<ArgumentException>(() => new MarkerBoard(spec));
    }

    [Theory]
    [InlineData(300)]
    [InlineData(600)]
    public void Printable_png_has_true_scale_and_is_detectable(double dpi)
    {
        using var board = MarkerBoard.DefaultHeadBoard();
        var dir = Directory.CreateTempSubdirectory("smp-vision-board-");
        try
        {
            var path = Path.Combine(dir.FullName, "board.png");
            board.RenderPng(path, dpi);
            using var image = Cv2.ImRead(path, ImreadModes.Grayscale);
            Assert.False(image.Empty());
            Assert.Equal((int)Math.Round(30.0 * dpi / 25.4), image.Width);
            Assert.Equal((int)Math.Round(24.0 * dpi / 25.4), image.Height);

            // The printed board must be the board the tracker looks for: every marker found on a
            // white page around it.
            using var page = new Mat(image.Rows + 80, image.Cols + 80, MatType.CV_8UC1, Scalar.All(255));
            using (var roi = new Mat(page, new Rect(40, 40, image.Cols, image.Rows))) image.CopyTo(roi);
            using var estimator = new BoardPoseEstimator(board, CameraIntrinsics.Synthetic());
            var detection = estimator.Detect(page);
            Assert.Equal(Enumerable.Range(0, 10), detection.MarkerIds.Order());
            Assert.Equal(12, detection.CharucoIds.Length);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
