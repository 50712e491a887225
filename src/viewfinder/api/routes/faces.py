"""Faces found in library assets: list and filter them, one face, its aligned thumbnail, the
faces of one asset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from viewfinder.api.deps import library
from viewfinder.api.errors import ACCESS_STATUSES, error_responses
from viewfinder.api.params import DbInt, DbText
from viewfinder.api.responses import image_file
from viewfinder.db.models import Face
from viewfinder.library.library import Library

router = APIRouter(
    prefix="/api/v1", tags=["faces"], responses=error_responses(*ACCESS_STATUSES, 503)
)
LibraryDep = Annotated[Library, Depends(library)]


class FaceOut(BaseModel):
    id: int
    asset_id: int
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the asset's original.")
    landmarks: list[list[float]] = Field(
        description="Five (x, y): eye, eye, nose tip, mouth corner, mouth corner; the subject's "
        "right first (the one on the image's left)."
    )
    detection_score: float
    quality: float = Field(description="0-1: size, detector score, sharpness and pose combined.")
    clusterable: bool = Field(description="Good enough to be grouped with other faces.")
    person_id: int | None
    person_source: str | None = Field(description="manual or auto (how person_id was set).")
    match_score: float | None
    cluster_id: str | None
    created_at: datetime
    thumbnail_url: str
    person_name: str | None = Field(
        None,
        description="The name of person_id, in GET /api/v1/assets/{asset_id}/faces (null there "
        "for an unnamed face; not filled by the other face routes).",
    )

    @classmethod
    def of(cls, face: Face, request: Request, person_name: str | None = None) -> FaceOut:
        return cls(
            id=face.id,
            asset_id=face.asset_id,
            box=[face.x1, face.y1, face.x2, face.y2],
            landmarks=[list(point) for point in face.landmarks],
            detection_score=face.detection_score,
            quality=face.quality,
            clusterable=face.clusterable,
            person_id=face.person_id,
            person_source=face.person_source,
            match_score=face.match_score,
            cluster_id=face.cluster_id,
            created_at=face.created_at,
            thumbnail_url=str(request.url_for("face_thumbnail", face_id=face.id)),
            person_name=person_name,
        )


class FacePage(BaseModel):
    items: list[FaceOut]
    total: int
    limit: int
    offset: int


@router.get("/faces", response_model=FacePage)
def list_faces(
    request: Request,
    lib: LibraryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
    person_id: DbInt | None = None,
    cluster_id: DbText | None = None,
    unassigned: Annotated[
        bool | None, Query(description="true: faces of no person; false: of some person.")
    ] = None,
) -> FacePage:
    faces, total = lib.people.faces(limit, offset, person_id, cluster_id, unassigned)
    return FacePage(
        items=[FaceOut.of(f, request) for f in faces], total=total, limit=limit, offset=offset
    )


@router.get("/faces/{face_id}", response_model=FaceOut, responses=error_responses(404))
def get_face(face_id: DbInt, request: Request, lib: LibraryDep) -> FaceOut:
    return FaceOut.of(lib.people.face(face_id), request)


@router.get(
    "/faces/{face_id}/thumbnail",
    name="face_thumbnail",
    **image_file("The aligned face, 112 x 112 JPEG.", "image/jpeg"),
)
def face_thumbnail(face_id: DbInt, lib: LibraryDep) -> Response:
    """The face aligned as the recogniser saw it (112 x 112 JPEG)."""
    face = lib.people.face(face_id)
    # Private: a face crop identifies a person, so no shared caches.
    return Response(
        face.thumbnail, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get(
    "/assets/{asset_id}/faces", response_model=list[FaceOut], responses=error_responses(404)
)
def asset_faces(asset_id: DbInt, request: Request, lib: LibraryDep) -> list[FaceOut]:
    """The faces found in the image, each with its person's name: what a viewer draws."""
    return [FaceOut.of(f, request, name) for f, name in lib.assets.faces(asset_id)]
