using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using XenAoe.Agents.Host;
using XenAoe.Aoe;
using XenAoe.Block;
using XenAoe.Mirror;
using XenAoe.Nbd;

namespace XenAoe.Cli;

/// <summary><c>xenaoe mirror ...</c>: a VM disk's data path on a CPU server: AoE initiator, RAID1 over two disk servers, NBD export.</summary>
internal static class MirrorCommands
{
    private static readonly Option<string[]> Interfaces = new("--interface", "-i") { Description = "Storage NIC (repeat for each path)", Required = true };
    private static readonly Option<string[]> Legs = new("--leg") { Description = "AoE address of a leg, e.g. e1.0 (exactly two, on different disk servers)", Required = true };
    private static readonly Option<string> RegionSize = new("--region-size") { Description = "Bytes of data per write-intent bitmap bit (new mirrors)", DefaultValueFactory = _ => "1M" };
    private static readonly Option<double> LegTimeout = new("--leg-timeout") { Description = "Seconds without an answer before a leg is dropped (the VM's I/O stalls this long when a disk server dies)", DefaultValueFactory = _ => 1.5 };
    private static readonly Option<int> ResyncMBps = new("--resync-mbps") { Description = "Resync ceiling in MB/s, so VM I/O keeps priority (0: unthrottled)", DefaultValueFactory = _ => 256 };

    public static Command Build()
    {
        var mirror = new Command("mirror", "A VM disk's data path: RAID1 over two AoE volumes on two disk servers, exported over NBD");
        mirror.Subcommands.Add(Create());
        mirror.Subcommands.Add(Serve());
        mirror.Subcommands.Add(Replace());
        return mirror;
    }

    private static Command Create()
    {
        var assumeClean = new Option<bool>("--assume-clean") { Description = "Both legs are known identical (e.g. new sparse volumes): skip the initial copy" };
        var image = new Option<string>("--image") { Description = "Raw disk image to write onto the new mirror (both legs), e.g. a VM's root disk" };
        var command = new Command("create", "Format two AoE volumes as a new mirror (destroys their contents); without --assume-clean, copies leg 1 from leg 0")
            { Interfaces, Legs, RegionSize, ResyncMBps, LegTimeout, assumeClean, image };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            await using var path = await MirrorDataPath.CreateAsync(Options(parse), parse.GetValue(assumeClean), ct);
            if (!parse.GetValue(assumeClean))
                await WithProgressAsync(path.Mirror, ct);
            if (parse.GetValue(image) is { } file)
            {
                var total = new FileInfo(file).Length;
                var reported = 0L;
                var written = await BlockImage.WriteAsync(file, path.Mirror, new Progress<long>(done =>
                {
                    // A line per tenth, so a slow copy shows it is alive without flooding a log.
                    if (done * 10 / Math.Max(1, total) > Interlocked.Read(ref reported))
                    {
                        Interlocked.Exchange(ref reported, done * 10 / Math.Max(1, total));
                        Console.WriteLine($"image: {Sizes.Format(done)} of {Sizes.Format(total)} written");
                    }
                }), ct);
                Console.WriteLine($"image {file}: {Sizes.Format(written)} written to both legs");
            }
            Print(path.Mirror.Status);
        }));
        return command;
    }

    private static Command Serve()
    {
        var socket = new Option<string>("--nbd-socket") { Description = "Unix socket to serve NBD on" };
        var tcp = new Option<string>("--nbd-tcp") { Description = "TCP address:port to serve NBD on (e.g. 127.0.0.1:10809)" };
        var export = new Option<string>("--export") { Description = "NBD export name", DefaultValueFactory = _ => "disk" };
        var degraded = new Option<bool>("--allow-degraded") { Description = "Start with one leg if the other does not answer (only if that leg is known current)" };
        var takeOver = new Option<bool>("--take-over") { Description = "Force-set the legs' reservation even if another host holds it (that host must be dead or fenced)" };
        var command = new Command("serve", "Assemble the mirror and export it over NBD until SIGINT/SIGTERM; failed legs are taken back and resynced when they return")
            { Interfaces, Legs, ResyncMBps, LegTimeout, socket, tcp, export, degraded, takeOver };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var endpoints = new List<EndPoint>();
            if (parse.GetValue(socket) is { } path)
            {
                File.Delete(path);
                endpoints.Add(new UnixDomainSocketEndPoint(path));
            }
            if (parse.GetValue(tcp) is { } address)
                endpoints.Add(IPEndPoint.Parse(address));
            if (endpoints.Count == 0)
                throw new ArgumentException("give --nbd-socket or --nbd-tcp");
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
            {
                c.Cancel = true;
                stop.Cancel();
            });
            var options = Options(parse, parse.GetValue(degraded), parse.GetValue(takeOver));
            await using var dataPath = await MirrorDataPath.OpenAsync(options, ct);
            // The mirror never blocks a thread (every leg call awaits the network), so requests run inline on the connection's
            // receive loop instead of hopping to the thread pool (figures on NbdServerOptions.RunRequestsInline).
            await using var server = new NbdServer(new NbdServerOptions { RunRequestsInline = true });
            server.AddExport(parse.GetValue(export)!, dataPath.Mirror, $"XenAoE mirror {dataPath.Mirror.MirrorId}");
            await server.StartAsync(endpoints, stop.Token);
            Console.WriteLine($"serving export '{parse.GetValue(export)}' on {string.Join(", ", endpoints)}: {dataPath.Mirror.Size} bytes");
            Print(dataPath.Mirror.Status);
            await WatchAsync(dataPath.Mirror, stop.Token);
        }));
        return command;
    }

    private static Command Replace()
    {
        var index = new Option<int>("--index") { Description = "Which leg to replace: 0 or 1 (the order of --leg)", Required = true };
        var with = new Option<string>("--new") { Description = "AoE address of the new volume, e.g. e3.0 on a third disk server", Required = true };
        var command = new Command("replace", "Replace a leg (failed, or on a disk server being drained) by a new volume and copy the whole disk onto it, with progress; run while the mirror is not being served, then serve with the new --leg")
            { Interfaces, Legs, ResyncMBps, LegTimeout, index, with };
        command.SetAction((parse, ct) => CommandErrors.Guard(async () =>
        {
            var which = parse.GetValue(index);
            if (which is not (0 or 1))
                throw new ArgumentException("--index is 0 or 1");
            // The leg being replaced may be dead: assemble from the other one if need be.
            await using var path = await MirrorDataPath.OpenAsync(Options(parse, allowDegraded: true), ct);
            await path.ReplaceLegAsync(which, AoeAddress.Parse(parse.GetValue(with)!), ct);
            await WithProgressAsync(path.Mirror, ct);
            Print(path.Mirror.Status);
        }));
        return command;
    }

    private static MirrorDataPathOptions Options(ParseResult parse, bool allowDegraded = false, bool takeOver = false)
    {
        var legs = parse.GetValue(Legs)!.Select(AoeAddress.Parse).ToArray();
        return new MirrorDataPathOptions
        {
            Interfaces = parse.GetValue(Interfaces)!,
            Legs = legs,
            AllowDegraded = allowDegraded,
            TakeOver = takeOver,
            DeviceTimeout = TimeSpan.FromSeconds(parse.GetValue(LegTimeout)),
            PathTimeout = TimeSpan.FromSeconds(Math.Min(1, parse.GetValue(LegTimeout))),
            Mirror = new MirrorOptions
            {
                RegionSize = (int)Sizes.Parse(parse.GetValue(RegionSize) ?? "1M"),
                ResyncBytesPerSecond = parse.GetValue(ResyncMBps) * 1_000_000L,
                Log = Console.WriteLine,
            },
            Log = Console.WriteLine,
        };
    }

    /// <summary>Prints a line whenever the mirror's health changes, and resync progress every few seconds while it runs.</summary>
    private static async Task WatchAsync(Mirror.Mirror mirror, CancellationToken ct)
    {
        var last = mirror.Status;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var tick = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var now = mirror.Status;
                if (now.Health != last.Health || now.Legs.Select(l => l.State).SequenceEqual(last.Legs.Select(l => l.State)) is false
                    || (now.Health == MirrorHealth.Resyncing && ++tick % 5 == 0))
                    Print(now);
                last = now;
            }
        }
        catch (OperationCanceledException)
        {
            Console.WriteLine("stopping: flushing and marking the legs clean");
        }
    }

    private static async Task WithProgressAsync(Mirror.Mirror mirror, CancellationToken ct)
    {
        while (!mirror.ResyncCompletion.IsCompleted)
        {
            var s = mirror.Status;
            Console.Error.Write($"\rcopying: {Sizes.Format(s.ResyncDoneBytes)} of {Sizes.Format(s.ResyncTotalBytes)}   ");
            await Task.WhenAny(mirror.ResyncCompletion, Task.Delay(500, ct));
        }
        Console.Error.WriteLine();
        await mirror.ResyncCompletion;
    }

    private static void Print(MirrorStatus s)
    {
        var resync = s.ResyncTotalBytes > 0 ? $", resync {Sizes.Format(s.ResyncDoneBytes)} of {Sizes.Format(s.ResyncTotalBytes)}" : "";
        Console.WriteLine($"mirror {s.MirrorId}: {s.Health.ToString().ToLowerInvariant()}, {Sizes.Format(s.Size)}, {s.DirtyRegions} dirty regions{resync}");
        Table.Write(Console.Out, ["LEG", "ADDRESS", "STATE", "EVENTS", "EPOCH", "REASON"], s.Legs.Select(l => (IReadOnlyList<string>)
            [l.Index.ToString(System.Globalization.CultureInfo.InvariantCulture), l.Name, l.State.ToString(), l.Events.ToString(System.Globalization.CultureInfo.InvariantCulture),
                l.Epoch.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), l.Reason ?? "-"]));
    }
}
