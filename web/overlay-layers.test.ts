import { describe, expect, it } from 'vitest';
import { CourierFleet } from './courier-fleet.js';
import { assignmentLines } from './overlay-layers.js';
import { RequestBoard } from './request-board.js';

describe('assignment lines', () => {
  it('draws a stack as one courier’s wide trip lines and an en-route leg as queued until it is picked up', () => {
    const fleet = new CourierFleet();
    fleet.reset([['car', 51.5, -0.12, 'busy']], 0);
    const board = new RequestBoard();
    const at = (lat: number) => ({ lat, lng: -0.12 });
    board.reset([
      { id: 'a', kind: 'delivery', status: 'assigned', pickup: at(51.501), dropoff: at(51.52), courierId: 'car', stackId: 's1' },
      { id: 'b', kind: 'delivery', status: 'assigned', pickup: at(51.501), dropoff: at(51.53), courierId: 'car', stackId: 's1' },
      { id: 'c', kind: 'delivery', status: 'assigned', pickup: at(51.531), dropoff: at(51.54), courierId: 'car', enRoute: true },
      { id: 'd', kind: 'delivery', status: 'picked_up', pickup: at(51.5), dropoff: at(51.51), courierId: 'car', enRoute: true },
    ], 0);
    const lines = assignmentLines(board, fleet).features.map((f) => `${f.properties!.id}:${f.properties!.leg}:${f.properties!.stacked}`);
    expect(lines).toEqual(['a:drive:true', 'a:trip:true', 'b:drive:true', 'b:trip:true', 'c:queued:false', 'c:trip:false', 'd:drive:false']);
  });
});
