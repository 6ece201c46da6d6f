using System.Globalization;
using XenAoe.ControllerApiLoad;

// Usage: XenAoe.ControllerApiLoad [clients=16] [seconds=5] [vms=1000] [jobs=1000]
// Starts a controller in this process on loopback (SQLite store in a temp folder), writes the inventory into its store, then
// runs the clients against GET /api/v1/vms and GET /api/v1/jobs and prints one result line.
var clients = Argument(0, 16);
var seconds = Argument(1, 5);
var vms = Argument(2, 1000);
var jobs = Argument(3, 1000);

await using var controller = await LoopbackController.StartAsync();
await ApiLoad.SeedAsync(controller.State.Store, vms, jobs);
using var http = controller.CreateClient(controller.Token);
string[] paths = ["api/v1/vms", "api/v1/jobs"];
// Warm-up: JIT, connection setup, SQLite page cache.
_ = await ApiLoad.RunAsync(http, clients, TimeSpan.FromSeconds(1), paths);
var result = await ApiLoad.RunAsync(http, clients, TimeSpan.FromSeconds(seconds), paths);
Console.WriteLine($"store: {vms} VMs, {jobs} jobs; GET /api/v1/vms and /api/v1/jobs alternately");
Console.WriteLine(result);
return result.Failures == 0 ? 0 : 1;

int Argument(int index, int fallback) =>
    args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
